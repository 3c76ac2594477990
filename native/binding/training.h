#pragma once
#include <napi.h>

namespace segvol::binding {
// Exports loss and optimizerUpdate.
void defineTraining(Napi::Env env, Napi::Object exports);
}  // namespace segvol::binding
