/*
 * edgespec.h — the C ABI of the edgespec native runtime.
 *
 * Conventions (kept by every function in this header):
 *   - every symbol starts with `es_`; handles are opaque pointers;
 *   - a function that can fail returns es_status (ES_OK == 0) and, on failure, sets a
 *     thread-local message readable with es_last_error() until the next failing call;
 *   - the library never calls exit()/abort() and never lets a C++ exception cross this boundary;
 *   - strings returned as `const char *` are owned by the library (valid until the stated event);
 *   - every es_*_create / es_*_load has a matching es_*_free that accepts NULL.
 */
#ifndef EDGESPEC_H
#define EDGESPEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  ifdef EDGESPEC_BUILDING_LIBRARY
#    define ES_API __declspec(dllexport)
#  else
#    define ES_API __declspec(dllimport)
#  endif
#else
#  define ES_API __attribute__((visibility("default")))
#endif

/* ABI version: bumped on any incompatible change of this header. */
#define ES_ABI_VERSION 1

typedef enum es_status {
    ES_OK = 0,
    ES_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, an out-of-range value, ... */
    ES_ERR_IO = 2,               /* a file is missing or unreadable */
    ES_ERR_BUNDLE = 3,           /* the bundle or its manifest is malformed or of another schema */
    ES_ERR_DEVICE = 4,           /* the device is unknown or cannot compile the model */
    ES_ERR_CONTEXT = 5,          /* the prompt (plus generation) does not fit the context length */
    ES_ERR_BUFFER_TOO_SMALL = 6, /* two-call size query: the needed size was written */
    ES_ERR_CANCELLED = 7,        /* a callback asked to stop with an error */
    ES_ERR_INTERNAL = 99
} es_status;

/* The ABI version the library was built with (compare with ES_ABI_VERSION). */
ES_API int es_abi_version(void);

/* Version string of the edgespec library. Static storage. */
ES_API const char *es_version(void);

/* Version string of the OpenVINO runtime the library is linked with. Static storage. */
ES_API const char *es_openvino_version(void);

/* Comma-separated list of OpenVINO devices available on this machine (e.g. "CPU,GPU").
 * Two-call size query: with buf == NULL or *size too small, writes the needed size (including
 * the terminating NUL) to *size and returns ES_ERR_BUFFER_TOO_SMALL (or ES_OK when buf == NULL). */
ES_API es_status es_available_devices(char *buf, size_t *size);

/* The message of the last failing call on this thread ("" if none). Valid until the next call
 * that fails on this thread. */
ES_API const char *es_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* EDGESPEC_H */
