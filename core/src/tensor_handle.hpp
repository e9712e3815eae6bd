// A tensor placed over the tiers: its bytes are a list of segments, each a byte range of a buffer on one
// tier. A layer's weights split byte-exactly at the policy's percentages give tensors of one, two or three
// segments (compute device, host memory, disk).
#pragma once

#include "device.hpp"

#include <flexrt/tensor.hpp>

#include <string>
#include <vector>

namespace flexrt {

struct Segment {
    Buffer* buffer = nullptr;  // owned elsewhere: a tier's buffer, or an open weight file
    uint64_t offset = 0;       // in the buffer
    uint64_t bytes = 0;
    uint64_t at = 0;  // where this segment starts in the tensor's bytes
    TierKind tier() const { return buffer->device().kind(); }
};

struct TensorHandle {
    std::string name;
    DType dtype = DType::f16;
    Shape shape;
    std::vector<Segment> segments;  // in order, covering [0, bytes()) exactly

    uint64_t bytes() const { return static_cast<uint64_t>(numel(shape)) * dtype_size(dtype); }
    // The tensor's memory when it lies whole in one segment on `tier`, else nullptr.
    std::byte* resident_on(TierKind tier) const {
        if (segments.size() != 1 || segments[0].tier() != tier || !segments[0].buffer->data()) return nullptr;
        return segments[0].buffer->data() + segments[0].offset;
    }
};

}  // namespace flexrt
