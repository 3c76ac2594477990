// Evaluation measures of the source papers, on label volumes (D, H, W) stored
// row-major (a 2D image is D = 1). Pure C++: no tensors, no N-API.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace segvol::metrics {

struct Dims {
  int64_t d, h, w;
  int64_t size() const { return d * h * w; }
};

// ---- segmentation.cpp
// Connected components of the voxels where foreground != 0. connectivity:
// 4 or 8 (2D, each slice on its own) or 6 or 26 (3D). Components are numbered
// 1.. in scan order; background is 0. count receives the number of components.
std::vector<int32_t> connectedComponents(const std::vector<uint8_t>& foreground, Dims dims, int connectivity,
                                         int32_t* count);
// Segments from a boundary map (high = boundary): components of voxels below threshold.
std::vector<int32_t> thresholdSegmentation(const float* boundary, Dims dims, float threshold, int connectivity);
// Seeded priority flood: seeds are components of voxels below seedThreshold; they grow
// over voxels below maskThreshold in order of increasing boundary value (ties in
// scan order); segments smaller than minSize voxels are removed (0).
std::vector<int32_t> priorityFlood(const float* boundary, Dims dims, float seedThreshold, float maskThreshold,
                                   int64_t minSize, int connectivity);
// Grows the segments of labels (0 = unassigned) over the unassigned voxels below
// maskThreshold in order of increasing boundary value (ties in scan order): each voxel
// joins the segment of its first labelled neighbour. Voxels no segment reaches stay 0.
void growSegments(std::vector<int32_t>& labels, const float* boundary, Dims dims, float maskThreshold, int connectivity);

// ---- watershed.cpp: Zlateski & Seung's watershed on an affinity graph
struct RegionEdge {
  int32_t a, b;  // segment ids
  float weight;  // the strongest affinity between them
};
struct WatershedOptions {
  float low = 0.3f;   // edges below: not followed, not merged
  float high = 0.99f; // edges above count as equally strong (their voxels share a basin)
  // The size-dependent merge: (weight, size) steps in decreasing weight; two segments
  // joined by an edge of weight w merge while either is smaller than the size of the
  // first step with w >= its weight.
  std::vector<std::pair<float, int64_t>> sizeThresholds;
  int64_t minSize = 0;  // smaller segments become background after merging
  bool spanningTree = true;  // false: no tree (fragments for agglomeration need none)
};
struct WatershedResult {
  std::vector<int32_t> segments;  // 1.. in scan order, 0 background
  int32_t basins = 0;             // before merging
  int32_t count = 0;              // after
  std::vector<RegionEdge> tree;   // maximum spanning tree of the segments, strongest first
};
// aff: (3, D, H, W), channel a (z, y, x) holding each voxel's edge to its predecessor
// along axis a; threeD false ignores the z edges (each slice on its own).
WatershedResult affinityWatershed(const float* aff, Dims dims, bool threeD, const WatershedOptions& options);
// The affinity graph of a boundary map (high = boundary): 1 - max(b_u, b_v) per edge.
std::vector<float> boundaryAffinities(const float* boundary, Dims dims, bool threeD);
// The segments joined along the tree's edges of weight >= threshold, renumbered.
std::vector<int32_t> cutTree(const std::vector<int32_t>& segments, const std::vector<RegionEdge>& tree, float threshold);

// ---- rand.cpp
// One adapted Rand error with its precision and recall (1 - the F-score of the two).
struct AdaptedRand {
  double error, precision, recall;
};
struct RandScores {
  double vMerge, vSplit, fScore;             // the 2D-3D ConvNet paper's V^Rand (sums of squared counts)
  double randIndex;                          // Rand (1971): agreeing pairs / all pairs
  // As scikit-image's adapted_rand_error: pairs of distinct voxels, a predicted 0 is one
  // ordinary segment; its precision = same-segment pairs / truth pairs, recall = / prediction pairs.
  AdaptedRand skimage;
  // As the SNEMI3D challenge's script: squared counts, truth rows, predicted 0 inside the truth
  // added as sum(c) / n to both the prediction's and the joint sums (n = every voxel given);
  // precision = joint / prediction, recall = joint / truth.
  AdaptedRand snemi3d;
  // The same with every predicted-0 voxel its own segment: sum(c) added, not sum(c) / n.
  AdaptedRand singletons;
  double viSplit, viMerge;                   // H(pred | truth), H(truth | pred), in bits
};
// pred, truth: segment ids per voxel (32-bit ints). ignoreTruthZero: drop voxels whose truth id
// is 0 from every measure (the ISBI/SNEMI convention for boundary voxels); the SNEMI3D forms
// still count them in their n.
RandScores randScores(const int64_t* pred, const int64_t* truth, int64_t n, bool ignoreTruthZero);

// ---- rand2d.cpp: the 2D Rand scores of a stack, slice by slice
// Each slice's segments as its own 2D connected components (connectivity 4 or 8) of
// equal ids; 0 stays 0. Ids are 1.. over the stack in scan order, so no two slices share one.
std::vector<int32_t> relabelSlices(const int64_t* ids, Dims dims, int connectivity);
// What a predicted 0 (a boundary pixel) inside the truth's foreground counts as.
enum class PredictedZero { Exclude, Singletons, OneSegment };
// Per slice: the truth's foreground pixels (truth != 0), the pixels counted, and the
// sums of the Rand scores over the counted pixels: sum n_ij^2, sum_i a_i^2 (a: the
// prediction's segment sizes), sum_j b_j^2 (b: the truth's). Truth 0 is never counted.
struct SliceRandCounts {
  double foreground, counted, joint2, pred2, truth2;
};
std::vector<SliceRandCounts> sliceRandCounts(const int32_t* pred, const int64_t* truth, Dims dims, PredictedZero zero);
// The search of one segmentation method over thresholds: 'threshold' segments every
// slice into the connected components below each threshold; 'watershed' runs the
// in-plane watershed once (low, high, sizeThreshold) and cuts its tree at affinity
// 1 - threshold. With grow, predicted 0 pixels first join a neighbouring segment
// (growSegments over the whole boundary map). Per threshold: the slices' counts and
// the number of segments.
struct Rand2dSweep {
  std::vector<std::vector<SliceRandCounts>> counts;  // [threshold][slice]
  std::vector<int32_t> segments;                     // [threshold]
};
struct Rand2dMethod {
  bool watershed = false;
  float low = 0.3f, high = 0.99f;
  int64_t sizeThreshold = 25;
  int connectivity = 4;  // the components of the 'threshold' method and the growth
  bool grow = false;
  PredictedZero zero = PredictedZero::Singletons;
};
Rand2dSweep rand2dSweep(const float* boundary, const int64_t* truth, Dims dims, const std::vector<float>& thresholds,
                        const Rand2dMethod& method);

// ---- overlap.cpp
// confusion[t * classes + p]: voxels of truth class t predicted as p.
std::vector<int64_t> confusionMatrix(const int64_t* pred, const int64_t* truth, int64_t n, int64_t classes);
// Pixel error of boundary probabilities against binary truth at one threshold
// (p > threshold is boundary), and the best threshold by line search over
// `steps` evenly spaced thresholds in (0, 1).
double pixelError(const float* probability, const float* truth, int64_t n, float threshold);
std::pair<double, float> bestPixelError(const float* probability, const float* truth, int64_t n, int steps);

// ---- warping.cpp
struct WarpingResult {
  int64_t warpingErrors;  // pixels that still disagree after topology-preserving warping
  int64_t pixelErrors;    // pixels that disagree before
  int64_t voxels;
};
// prediction, truth: binary (D, H, W), 1 = foreground; each slice warped on its own.
WarpingResult warpingError(const uint8_t* prediction, const uint8_t* truth, Dims dims);

// ---- distance.cpp
// Exact squared Euclidean distance (in physical units, spacing (z, y, x)) from
// every voxel to the nearest voxel where feature != 0 (infinite if none).
std::vector<double> squaredDistanceTransform(const std::vector<uint8_t>& feature, Dims dims,
                                             const std::array<double, 3>& spacing);
// Surface voxels: in the mask with a 6-neighbour outside it (or on the volume's border).
std::vector<uint8_t> surface(const std::vector<uint8_t>& mask, Dims dims);
// Distances from every surface voxel of a to the nearest surface voxel of b.
std::vector<double> surfaceDistances(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, Dims dims,
                                     const std::array<double, 3>& spacing);

}  // namespace segvol::metrics
