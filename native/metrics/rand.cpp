#include <cmath>
#include <unordered_map>
#include <vector>

#include "metrics.h"
#include "pair_hash.h"

namespace segvol::metrics {
namespace {

// Segment ids are 32-bit (the binding checks): pred in the high half, truth in the low.
uint64_t key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) ^ static_cast<uint32_t>(b); }

}  // namespace

RandScores randScores(const int64_t* pred, const int64_t* truth, int64_t n, bool ignoreTruthZero) {
  std::unordered_map<uint64_t, int64_t, PairHash> joint;
  std::unordered_map<int64_t, int64_t> predSizes, truthSizes;
  joint.reserve(1024);
  int64_t total = 0;
  int64_t lastP = INT64_MIN, lastT = INT64_MIN;
  int64_t* lastCount = nullptr;
  for (int64_t i = 0; i < n; ++i) {
    if (ignoreTruthZero && truth[i] == 0) continue;
    ++total;
    // Runs of equal pairs are common in label volumes: skip the hash lookup for them.
    if (pred[i] == lastP && truth[i] == lastT) {
      ++*lastCount;
      continue;
    }
    lastP = pred[i];
    lastT = truth[i];
    lastCount = &joint[key(lastP, lastT)];
    ++*lastCount;
  }
  // Row and column sums from the joint table (fewer entries than voxels). The SNEMI3D forms
  // take predicted 0 out of the columns: its counts per truth row (c_i) only enter as sum(c).
  double sumJoint2 = 0, sumJointNonzero2 = 0;
  int64_t predZero = 0;
  for (const auto& [k, c] : joint) {
    const double c2 = static_cast<double>(c) * static_cast<double>(c);
    sumJoint2 += c2;
    const int64_t p = static_cast<int64_t>(static_cast<int32_t>(k >> 32));
    predSizes[p] += c;
    if (p == 0) predZero += c;
    else sumJointNonzero2 += c2;
  }
  for (const auto& [k, c] : joint) truthSizes[static_cast<int32_t>(static_cast<uint32_t>(k))] += c;
  double sumPred2 = 0, sumTruth2 = 0, sumPredNonzero2 = 0;
  for (const auto& [l, c] : predSizes) {
    const double c2 = static_cast<double>(c) * static_cast<double>(c);
    sumPred2 += c2;
    if (l != 0) sumPredNonzero2 += c2;
  }
  for (const auto& [l, c] : truthSizes) sumTruth2 += static_cast<double>(c) * static_cast<double>(c);
  const double N = static_cast<double>(total);
  RandScores r{};
  if (total == 0) {
    r.vMerge = r.vSplit = r.fScore = r.randIndex = 1.0;
    r.skimage = r.snemi3d = r.singletons = AdaptedRand{0.0, 1.0, 1.0};
    return r;
  }
  // The paper's V^Rand: i indexes the proposal (pred), j the truth.
  r.vMerge = sumJoint2 / sumPred2;
  r.vSplit = sumJoint2 / sumTruth2;
  r.fScore = 2 * r.vMerge * r.vSplit / (r.vMerge + r.vSplit);
  // Pairs: sum C(n_ij, 2) etc.; Rand index = agreeing pairs / all pairs.
  const double pairs = N * (N - 1) / 2;
  const double samePair = (sumJoint2 - N) / 2, samePred = (sumPred2 - N) / 2, sameTruth = (sumTruth2 - N) / 2;
  r.randIndex = pairs > 0 ? (pairs + 2 * samePair - samePred - sameTruth) / pairs : 1.0;
  // scikit-image's adapted Rand error: counts of ordered pairs of distinct voxels.
  // Its "precision" divides by the truth's pairs and its "recall" by the prediction's
  // (skimage.metrics.adapted_rand_error): kept as it names them.
  const double sp = sumJoint2 - N, sb = sumPred2 - N, sa = sumTruth2 - N;
  r.skimage.precision = sa > 0 ? sp / sa : 1.0;
  r.skimage.recall = sb > 0 ? sp / sb : 1.0;
  r.skimage.error = (sb + sa) > 0 ? 1.0 - sp / (0.5 * sb + 0.5 * sa) : 0.0;
  // SNEMI3D: predicted-0 voxels inside the truth add sum(c) / n (n: every voxel given, the
  // script's segA.size) where singletons would add 1 each. Both sums stay > 0 here: every
  // counted voxel is in c or in a nonzero column.
  const auto snemi = [&](double zeroTerm) {
    const double sumAB = sumJointNonzero2 + zeroTerm, sumB = sumPredNonzero2 + zeroTerm, sumA = sumTruth2;
    const double precision = sumAB / sumB, recall = sumAB / sumA;
    return AdaptedRand{1.0 - 2.0 * precision * recall / (precision + recall), precision, recall};
  };
  r.snemi3d = snemi(static_cast<double>(predZero) / static_cast<double>(n));
  r.singletons = snemi(static_cast<double>(predZero));
  // Conditional entropies in bits (scikit-image's variation_of_information).
  double hJoint = 0, hPred = 0, hTruth = 0;
  for (const auto& [k, c] : joint) hJoint -= (c / N) * std::log2(c / N);
  for (const auto& [l, c] : predSizes) hPred -= (c / N) * std::log2(c / N);
  for (const auto& [l, c] : truthSizes) hTruth -= (c / N) * std::log2(c / N);
  r.viSplit = hJoint - hTruth;  // H(pred | truth)
  r.viMerge = hJoint - hPred;   // H(truth | pred)
  return r;
}

}  // namespace segvol::metrics
