#include <algorithm>
#include <numeric>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/error.h"
#include "metrics.h"

namespace segvol::metrics {
namespace {

struct Offset {
  int64_t dz, dy, dx;
};

// Neighbour offsets that come earlier in scan order (for the union-find pass),
// or all of them (for flooding).
std::vector<Offset> neighbours(int connectivity, bool earlierOnly) {
  std::vector<Offset> out;
  for (int dz = -1; dz <= 1; ++dz)
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        if (!dz && !dy && !dx) continue;
        const int manhattan = std::abs(dz) + std::abs(dy) + std::abs(dx);
        bool use = false;
        switch (connectivity) {
          case 4: use = dz == 0 && manhattan == 1; break;
          case 8: use = dz == 0; break;
          case 6: use = manhattan == 1; break;
          case 26: use = true; break;
        }
        if (!use) continue;
        const bool earlier = dz < 0 || (dz == 0 && (dy < 0 || (dy == 0 && dx < 0)));
        if (!earlierOnly || earlier) out.push_back({dz, dy, dx});
      }
  return out;
}

void checkConnectivity(int connectivity) {
  if (connectivity != 4 && connectivity != 8 && connectivity != 6 && connectivity != 26) {
    fail(ErrorCode::Argument, "connectivity: expected 4 or 8 (2D, per slice) or 6 or 26 (3D), received " +
                                  std::to_string(connectivity));
  }
}

int64_t find(std::vector<int64_t>& parent, int64_t i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]];
    i = parent[i];
  }
  return i;
}

}  // namespace

std::vector<int32_t> connectedComponents(const std::vector<uint8_t>& foreground, Dims dims, int connectivity,
                                         int32_t* count) {
  checkConnectivity(connectivity);
  const std::vector<Offset> before = neighbours(connectivity, true);
  const int64_t n = dims.size();
  std::vector<int64_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  for (int64_t z = 0; z < dims.d; ++z)
    for (int64_t y = 0; y < dims.h; ++y)
      for (int64_t x = 0; x < dims.w; ++x) {
        const int64_t i = (z * dims.h + y) * dims.w + x;
        if (!foreground[i]) continue;
        for (const Offset& o : before) {
          const int64_t zz = z + o.dz, yy = y + o.dy, xx = x + o.dx;
          if (zz < 0 || yy < 0 || yy >= dims.h || xx < 0 || xx >= dims.w) continue;
          const int64_t j = (zz * dims.h + yy) * dims.w + xx;
          if (!foreground[j]) continue;
          const int64_t a = find(parent, i), b = find(parent, j);
          if (a != b) parent[std::max(a, b)] = std::min(a, b);
        }
      }
  std::vector<int32_t> labels(n, 0);
  std::vector<int32_t> rootLabel(n, 0);
  int32_t next = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!foreground[i]) continue;
    const int64_t root = find(parent, i);
    if (!rootLabel[root]) rootLabel[root] = ++next;
    labels[i] = rootLabel[root];
  }
  if (count) *count = next;
  return labels;
}

std::vector<int32_t> thresholdSegmentation(const float* boundary, Dims dims, float threshold, int connectivity) {
  std::vector<uint8_t> inside(dims.size());
  for (int64_t i = 0; i < dims.size(); ++i) inside[i] = boundary[i] < threshold;
  return connectedComponents(inside, dims, connectivity, nullptr);
}

void growSegments(std::vector<int32_t>& labels, const float* boundary, Dims dims, float maskThreshold, int connectivity) {
  checkConnectivity(connectivity);
  const std::vector<Offset> all = neighbours(connectivity, false);
  // Priority flood: (boundary value, scan index) keeps the order deterministic.
  using Item = std::pair<float, int64_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue;
  auto pushNeighbours = [&](int64_t i) {
    const int64_t z = i / (dims.h * dims.w), y = (i / dims.w) % dims.h, x = i % dims.w;
    for (const Offset& o : all) {
      const int64_t zz = z + o.dz, yy = y + o.dy, xx = x + o.dx;
      if (zz < 0 || zz >= dims.d || yy < 0 || yy >= dims.h || xx < 0 || xx >= dims.w) continue;
      const int64_t j = (zz * dims.h + yy) * dims.w + xx;
      if (!labels[j] && boundary[j] < maskThreshold) queue.push({boundary[j], j});
    }
  };
  for (int64_t i = 0; i < dims.size(); ++i) {
    if (labels[i]) pushNeighbours(i);
  }
  while (!queue.empty()) {
    const int64_t i = queue.top().second;
    queue.pop();
    if (labels[i]) continue;
    // The voxel joins the segment of its earliest labelled neighbour.
    const int64_t z = i / (dims.h * dims.w), y = (i / dims.w) % dims.h, x = i % dims.w;
    for (const Offset& o : all) {
      const int64_t zz = z + o.dz, yy = y + o.dy, xx = x + o.dx;
      if (zz < 0 || zz >= dims.d || yy < 0 || yy >= dims.h || xx < 0 || xx >= dims.w) continue;
      const int32_t l = labels[(zz * dims.h + yy) * dims.w + xx];
      if (l) {
        labels[i] = l;
        break;
      }
    }
    pushNeighbours(i);
  }
}

std::vector<int32_t> priorityFlood(const float* boundary, Dims dims, float seedThreshold, float maskThreshold,
                               int64_t minSize, int connectivity) {
  checkConnectivity(connectivity);
  if (!(seedThreshold <= maskThreshold)) {
    fail(ErrorCode::Argument, "priorityFlood: expected seedThreshold <= maskThreshold");
  }
  std::vector<int32_t> labels = thresholdSegmentation(boundary, dims, seedThreshold, connectivity);
  growSegments(labels, boundary, dims, maskThreshold, connectivity);
  if (minSize > 1) {
    std::vector<int64_t> sizes;
    for (int32_t l : labels) {
      if (l >= static_cast<int32_t>(sizes.size())) sizes.resize(l + 1, 0);
      ++sizes[l];
    }
    for (int32_t& l : labels) {
      if (l && sizes[l] < minSize) l = 0;
    }
  }
  return labels;
}

}  // namespace segvol::metrics
