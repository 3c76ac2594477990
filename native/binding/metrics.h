#pragma once
#include <napi.h>

namespace segvol::binding {
// Exports the metrics* functions (segmentation from boundary maps, Rand/VI, confusion, pixel error, surface distances).
void defineMetrics(Napi::Env env, Napi::Object exports);
}  // namespace segvol::binding
