// `flexrt convert`: a Hugging Face checkpoint (safetensors, single or sharded) to FlexLLMGen's numpy
// directory, the format every flexrt tier reads directly (O_DIRECT from the weight files themselves).
#pragma once

#include <string>
#include <vector>

namespace flexrt {

int convert_main(const std::vector<std::string>& args);

}  // namespace flexrt
