// A protobuf walk over an ONNX file that reads nothing but the external-data locations: the
// fields of each message kind that lead towards a TensorProto are followed, every other field is
// skipped by its length (raw weights are never copied). Field numbers are onnx.proto's.
#include "core/onnx_refs.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdint>

#include "core/error.hpp"

namespace es {

namespace {

enum Kind { kModel, kGraph, kNode, kAttribute, kFunction, kTraining, kSparse, kTensor, kEntry, kNone };

// The kind of message field `field` of a `kind` message holds, kNone for fields not followed.
Kind child(Kind kind, uint64_t field) {
    switch (kind) {
        case kModel:
            return field == 7 ? kGraph : field == 25 ? kFunction : field == 20 ? kTraining : kNone;
        case kGraph:
            return field == 1 ? kNode : field == 5 ? kTensor : field == 15 ? kSparse : kNone;
        case kNode:
            return field == 5 ? kAttribute : kNone;
        case kAttribute:
            if (field == 5 || field == 10) return kTensor;
            if (field == 6 || field == 11) return kGraph;
            return field == 22 || field == 23 ? kSparse : kNone;
        case kFunction:
            return field == 7 ? kNode : field == 11 ? kAttribute : kNone;
        case kTraining:
            return field == 1 || field == 2 ? kGraph : kNone;
        case kSparse:
            return field == 1 || field == 2 ? kTensor : kNone;
        case kTensor:
            return field == 13 ? kEntry : kNone;  // external_data: StringStringEntryProto
        default:
            return kNone;
    }
}

constexpr int kMaxDepth = 100;  // protobuf's own recursion limit

class Walker {
public:
    Walker(const std::string &path, std::vector<std::string> &out) : path_(path), out_(out) {}

    void walk(const uint8_t *p, const uint8_t *end, Kind kind, int depth) {
        if (depth > kMaxDepth) throw bad("messages nest more than 100 deep");
        std::string key, value;
        while (p < end) {
            const uint64_t tag = varint(p, end);
            const uint64_t field = tag >> 3, wire = tag & 7;
            if (wire == 0) {
                varint(p, end);
            } else if (wire == 1 || wire == 5) {
                const size_t n = wire == 1 ? 8 : 4;
                if (static_cast<size_t>(end - p) < n) throw bad("a field runs past its message");
                p += n;
            } else if (wire == 2) {
                const uint64_t n = varint(p, end);
                if (n > static_cast<uint64_t>(end - p)) throw bad("a field runs past its message");
                const Kind sub = child(kind, field);
                if (sub != kNone)
                    walk(p, p + n, sub, depth + 1);
                else if (kind == kEntry && field == 1)
                    key.assign(reinterpret_cast<const char *>(p), static_cast<size_t>(n));
                else if (kind == kEntry && field == 2)
                    value.assign(reinterpret_cast<const char *>(p), static_cast<size_t>(n));
                p += n;
            } else {
                throw bad("wire type " + std::to_string(wire));
            }
        }
        if (kind == kEntry && key == "location") out_.push_back(value);
    }

private:
    uint64_t varint(const uint8_t *&p, const uint8_t *end) const {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p >= end) break;
            const uint8_t b = *p++;
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (b < 0x80) return v;
        }
        throw bad("a number runs past its message");
    }

    Error bad(const std::string &why) const {
        return Error(ES_ERR_BUNDLE, "The ONNX model " + path_ + " is not a valid ONNX file (" + why + "); re-export the bundle.");
    }

    const std::string &path_;
    std::vector<std::string> &out_;
};

}  // namespace

std::vector<std::string> onnx_external_data(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error(ES_ERR_IO, "Cannot read " + path + ": the file is missing or unreadable.");
    struct stat st{};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
        ::close(fd);
        throw Error(ES_ERR_BUNDLE, "The ONNX model " + path + " is not a valid ONNX file (the file is empty); re-export the bundle.");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) throw Error(ES_ERR_IO, "Cannot read " + path + ": the file could not be mapped.");
    std::vector<std::string> out;
    try {
        const auto *p = static_cast<const uint8_t *>(map);
        Walker(path, out).walk(p, p + size, kModel, 0);
    } catch (...) {
        ::munmap(map, size);
        throw;
    }
    ::munmap(map, size);
    return out;
}

}  // namespace es
