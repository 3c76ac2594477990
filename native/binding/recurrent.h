#pragma once
#include <napi.h>

namespace segvol::binding {
// Exports clstmScan, clstmScanBackward, pyramidLstm (sync or Promise), pyramidLstmBackward, savedDispose.
void defineRecurrent(Napi::Env env, Napi::Object exports);
}  // namespace segvol::binding
