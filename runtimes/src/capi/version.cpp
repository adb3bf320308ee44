// Library identity and device discovery: the smallest real calls into OpenVINO.
#include "core/error.hpp"
#include "edgespec.h"

#include <openvino/openvino.hpp>

#include <cstring>
#include <string>

extern "C" {

ES_API int es_abi_version(void) { return ES_ABI_VERSION; }

ES_API const char *es_version(void) { return EDGESPEC_VERSION_STRING; }

ES_API const char *es_openvino_version(void) {
    // ov::get_openvino_version() returns a struct whose buildNumber points to static storage.
    return ov::get_openvino_version().buildNumber;
}

ES_API es_status es_available_devices(char *buf, size_t *size) {
    return es::guard([&]() -> es_status {
        if (!size) return es::fail(ES_ERR_INVALID_ARGUMENT, "es_available_devices: size must not be NULL");
        ov::Core core;
        std::string joined;
        for (const auto &d : core.get_available_devices()) {
            if (!joined.empty()) joined += ",";
            joined += d;
        }
        return es::copy_out(joined, buf, size);
    });
}

ES_API const char *es_last_error(void) { return es::last_error().c_str(); }

}  // extern "C"
