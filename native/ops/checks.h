// Argument checks shared by the op families. Each failure says what was
// expected, what came, and what to do.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/error.h"
#include "../registry/registry.h"

namespace segvol::ops {

void checkRank(const Tensor& t, std::initializer_list<int> ranks, const std::string& op, const std::string& arg,
               const std::string& layout);
void checkSameShape(const Tensor& a, const Tensor& b, const std::string& op, const std::string& aName,
                    const std::string& bName);
void checkVector(const Tensor& t, int64_t length, const std::string& op, const std::string& arg,
                 const std::string& why);
// Every tensor finite, checked at once (one device read-back); null entries are
// skipped; the error names the first tensor holding a NaN or Inf.
void checkAllFinite(Backend& backend, const std::vector<std::pair<const Tensor*, std::string>>& named, const std::string& op);
// dy must have the shape of the forward output.
void checkOutputGradient(const Tensor& dy, const Shape& expected, const std::string& op);
void checkNotEmpty(const Tensor& t, const std::string& op, const std::string& arg);
// The backend serving all these tensors, which must share a device.
Backend& backendOf(Implementation impl, const std::string& op, std::initializer_list<const Tensor*> tensors);
int spatialRankOf(const Tensor& x);
// Geometry index of spatial axis a of a tensor with this spatial rank (2D skips D).
inline int geometryAxis(int spatialRank, int a) { return 3 - spatialRank + a; }
const char* axisName(int spatialRank, int a);

}  // namespace segvol::ops
