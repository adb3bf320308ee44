// The files an ONNX model makes its reader open: the external-data locations of its tensors.
// ONNX Runtime and OpenVINO resolve them against the model's directory, so the bundle loader
// checks them before either reads the model (a bundle may not make the runtime read files outside it).
#pragma once
#include <string>
#include <vector>

namespace es {

// Every `location` of a tensor's external_data in the ONNX file at path, as written (duplicates
// kept), read by walking the protobuf fields that can hold a tensor (edgespec/bundle.py walks the
// same table). Throws es::Error(ES_ERR_BUNDLE) naming the file when it is not valid protobuf.
std::vector<std::string> onnx_external_data(const std::string &path);

}  // namespace es
