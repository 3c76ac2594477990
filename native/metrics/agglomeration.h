// Region graphs of fragments over an affinity graph and their greedy agglomeration (the
// scheme of waterz, Funke et al.'s MALA pipeline), in pieces a block-wise run can spread
// over processes: the statistics of one block (with the edges across its faces to the
// preceding blocks), the merge of block graphs, the agglomeration of a merged graph, and
// relabelling through the resulting lookup tables. Everything is exact and deterministic:
// affinities are summed in fixed point (int64), quantiles come from counts of quantised
// affinities, ties are broken by fragment ids; so a graph assembled from blocks equals the
// graph of the whole volume, and agglomerates to the same segmentations, bit for bit.
// Pure C++: no tensors, no N-API.
#pragma once
#include <cstdint>
#include <vector>

#include "metrics.h"

namespace segvol::metrics {

// An affinity a in [0, 1] is summed as round(a * 2^24): exact int64 sums in any order.
constexpr double kAffinityScale = 16777216.0;
// Quantiles use the level min(floor(a * 256), 255) of each affinity (waterz's 256 bins);
// a level stands for its bin's centre, (level + 0.5) / 256.
constexpr int kAffinityLevels = 256;

// The statistics of the voxel edges between pairs of fragments. Edges are sorted by (a, b),
// a < b, both > 0. With levels, each edge's histogram of quantised affinities is stored
// sparsely: entries levelStart[e] .. levelStart[e + 1] of `levels`, each (level << 56) | count,
// in increasing level (no dense 256-bin histogram per edge).
struct RegionGraph {
  bool withLevels = false;
  std::vector<int32_t> a, b;
  std::vector<int64_t> count, sum;
  std::vector<uint64_t> levelStart;  // edges + 1 offsets (withLevels only)
  std::vector<uint64_t> levels;
  size_t edges() const { return a.size(); }
};

inline int levelOf(uint64_t entry) { return static_cast<int>(entry >> 56); }
inline uint64_t countOf(uint64_t entry) { return entry & ((uint64_t{1} << 56) - 1); }
// Two sorted histograms p[0..m) and q[0..k) summed, appended to out (sorted by level).
void mergeLevels(const uint64_t* p, size_t m, const uint64_t* q, size_t k, std::vector<uint64_t>& out);

// The fragment ids of the slice just before a block along z (H * W values), y (D * W) and
// x (D * H), row-major in the two remaining axes; nullptr where the block starts the volume.
struct BlockFaces {
  const int32_t* z = nullptr;
  const int32_t* y = nullptr;
  const int32_t* x = nullptr;
};

// The region graph of a block: fragments (D, H, W), ids >= 0 (0: background, no edges);
// aff (3, D, H, W) as affinityWatershed reads it: channel a holds each voxel's edge to its
// predecessor along axis a, the block's first slice's edge reaching into faces. Every voxel
// edge belongs to its later voxel's block, so block graphs add up to the volume's graph.
// The affinities of the edges counted must be finite and in [0, 1].
RegionGraph regionGraph(const int32_t* fragments, const float* aff, Dims dims, const BlockFaces& faces, bool withLevels);

// A graph as bytes (little-endian, versioned) and back; levels are dropped when not wanted.
std::vector<uint8_t> serializeRegionGraph(const RegionGraph& graph);
RegionGraph deserializeRegionGraph(const uint8_t* data, size_t size, bool withLevels);

// One graph from several: the statistics of an edge present in several are summed.
RegionGraph mergeRegionGraphs(const std::vector<RegionGraph>& graphs);

enum class Scoring { Mean, Quantile };
struct AgglomerationOptions {
  Scoring scoring = Scoring::Mean;
  int quantile = 50;                // 0..100 (Quantile)
  std::vector<double> thresholds;   // ascending, in [0, 1]
};

// The score of an edge: 1 - its mean affinity, or 1 - the centre of the level of its
// q-quantile (the k-th smallest level, k = min(n, floor(q * n / 100) + 1) of n).
double edgeScore(const RegionGraph& graph, size_t edge, const AgglomerationOptions& options);

// Greedy agglomeration: while the lowest-scoring edge scores below the threshold, merge its
// two regions (their edges to a shared neighbour combine, statistics summed). Ties go to the
// edge holding the smallest pair of fragment ids (lower id, then higher). nodes: the sorted
// distinct fragment ids (each edge's ids among them). Returns, per threshold (ascending,
// each a coarsening of the one before), each node's segment: 1..n numbered in the order of
// their smallest fragment id.
std::vector<std::vector<int32_t>> agglomerate(const RegionGraph& graph, const std::vector<int32_t>& nodes,
                                              const AgglomerationOptions& options);

// ids[i] -> table[ids[i]] (0 stays 0); every id must index the table.
std::vector<int32_t> relabel(const int32_t* ids, int64_t n, const int32_t* table, int64_t tableSize);

}  // namespace segvol::metrics
