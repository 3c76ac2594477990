// Bindings of the tensor functions behind lib/core/tensor.ts: creation, shape,
// device, copies to JS and across devices, views, disposal, and the finiteness
// check of many tensors at once.
#include "../ops/ops.h"
#include "convert.h"
#include "modules.h"
#include "tensor_handle.h"

namespace segvol::binding {

// tensorFromArray(data: Float32Array, shape: number[], device)
Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      fail(ErrorCode::Argument, "Tensor.fromArray: expected data to be a Float32Array");
    }
    Napi::Float32Array data = info[0].As<Napi::Float32Array>();
    Shape shape = intArrayArg(info[1], "Tensor.fromArray", "shape");
    Device device = deviceArg(info[2], "Tensor.fromArray");
    for (int64_t s : shape) {
      if (s < 0) {
        fail(ErrorCode::Shape, "Tensor.fromArray: expected non-negative sizes, received " + shapeToString(shape));
      }
    }
    if (shape.empty() || shape.size() > static_cast<size_t>(kMaxRank)) {
      fail(ErrorCode::Shape, "Tensor.fromArray: expected a rank between 1 and 5, received " + shapeToString(shape));
    }
    if (static_cast<int64_t>(data.ElementLength()) != elementCount(shape)) {
      fail(ErrorCode::Shape, "Tensor.fromArray: shape " + shapeToString(shape) + " holds " +
                                 std::to_string(elementCount(shape)) + " values, but the data has " +
                                 std::to_string(data.ElementLength()) + "; pass data of exactly that length");
    }
    Backend& backend = backendFor(device);
    Tensor t = Tensor::empty(backend, shape);
    backend.copyFromHost(data.Data(), t);
    return Napi::Value(TensorHandle::wrap(info.Env(), t));
  });
}

// tensorFull(shape: number[], value, device): allocated and filled natively, so a
// shape too large for memory fails with ERR_MEMORY or ERR_SHAPE, not a JS RangeError.
Napi::Value TensorFull(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    Shape shape = intArrayArg(info[0], "Tensor.full", "shape");
    const double value = numberArg(info[1], "Tensor.full", "value");
    Backend& backend = backendFor(deviceArg(info[2], "Tensor.full"));
    Tensor t = Tensor::empty(backend, shape);
    backend.fill(t, static_cast<float>(value));
    return Napi::Value(TensorHandle::wrap(info.Env(), t));
  });
}

Napi::Value TensorShape(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.shape", "the tensor");
    Napi::Array out = Napi::Array::New(info.Env(), t.rank());
    for (int i = 0; i < t.rank(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(t.dim(i)));
    return Napi::Value(out);
  });
}

Napi::Value TensorDevice(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    return Napi::Value(Napi::String::New(info.Env(), deviceName(tensorArg(info, 0, "Tensor.device", "the tensor").device())));
  });
}

Napi::Value TensorToArray(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.toArray", "the tensor");
    // (tensor[, into]): into, a Float32Array of exactly the tensor's size, is filled and returned.
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        fail(ErrorCode::Argument, "Tensor.toArray: expected `into` to be a Float32Array; pass one of the tensor's size, or none for a new array");
      }
      Napi::Float32Array into = info[1].As<Napi::Float32Array>();
      if (into.ElementLength() != static_cast<size_t>(t.size())) {
        fail(ErrorCode::Shape, "Tensor.toArray: expected `into` to hold " + std::to_string(t.size()) + " values (the tensor " +
                                   shapeToString(t.shape()) + "), received " + std::to_string(into.ElementLength()) +
                                   "; pass an array of the tensor's size");
      }
      if (t.size()) t.backend().copyToHost(t, into.Data());
      return Napi::Value(into);
    }
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t.size()));
    if (t.size()) t.backend().copyToHost(t, out.Data());
    return Napi::Value(out);
  });
}

Napi::Value TensorTo(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.to", "the tensor");
    return Napi::Value(TensorHandle::wrap(info.Env(), ops::copyTo(t, deviceArg(info[1], "Tensor.to"))));
  });
}

Napi::Value TensorReshape(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const Tensor& t = tensorArg(info, 0, "Tensor.reshape", "the tensor");
    Shape shape = intArrayArg(info[1], "Tensor.reshape", "shape");
    if (shape.empty() || shape.size() > static_cast<size_t>(kMaxRank)) {
      fail(ErrorCode::Shape, "Tensor.reshape: expected a rank between 1 and 5, received " + shapeToString(shape));
    }
    return Napi::Value(TensorHandle::wrap(info.Env(), t.view(shape)));
  });
}

Napi::Value TensorDispose(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    handleArg<TensorHandle>(info[0], "Tensor.dispose", "a tensor handle")->dispose();
    return info.Env().Undefined();
  });
}

Napi::Value TensorIsDisposed(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    const bool disposed = handleArg<TensorHandle>(info[0], "Tensor.disposed", "a tensor handle")->disposed();
    return Napi::Value(Napi::Boolean::New(info.Env(), disposed));
  });
}

// firstNonFinite(tensors[]) -> index of the first tensor holding a NaN or Inf, or -1.
// Tensors are grouped by device so a GPU reads back once per call.
Napi::Value FirstNonFinite(const Napi::CallbackInfo& info) {
  return guard(info, [&] {
    std::vector<const Tensor*> xs = tensorListArg(info[0], "firstNonFinite");
    int first = -1;
    for (Device device : {Device::Cpu, Device::Cuda}) {
      std::vector<const Tensor*> group;
      std::vector<int> index;
      for (size_t i = 0; i < xs.size(); ++i) {
        if (xs[i]->device() == device && xs[i]->size() > 0) {
          group.push_back(xs[i]);
          index.push_back(static_cast<int>(i));
        }
      }
      if (group.empty()) continue;
      const int k = backendFor(device).firstNonFinite(group);
      if (k >= 0 && (first < 0 || index[k] < first)) first = index[k];
    }
    return Napi::Value(Napi::Number::New(info.Env(), first));
  });
}

}  // namespace segvol::binding
