// Shapes are vectors of int64 sizes, outermost first (contiguous, row-major).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace segvol {

using Shape = std::vector<int64_t>;

constexpr int kMaxRank = 5;

int64_t elementCount(const Shape& shape);
std::string shapeToString(const Shape& shape);  // "(2, 3, 8, 8)"
// Row-major strides of a contiguous tensor of this shape, in elements.
std::vector<int64_t> contiguousStrides(const Shape& shape);

}  // namespace segvol
