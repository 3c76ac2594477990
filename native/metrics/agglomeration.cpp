// Greedy agglomeration of a region graph (waterz's iterative region merging), exact and
// deterministic: the lowest-scoring edge merges first, ties going to the edge holding the
// smallest fragment pair, so the merges depend on the graph alone, never on how it was built.
#include <algorithm>
#include <queue>
#include <string>

#include "../core/error.h"
#include "agglomeration.h"
#include "flat_map.h"

namespace segvol::metrics {
namespace {

double score(int64_t count, int64_t sum, const uint64_t* levels, size_t entries, const AgglomerationOptions& o) {
  if (o.scoring == Scoring::Mean) return 1.0 - (static_cast<double>(sum) / static_cast<double>(count)) / kAffinityScale;
  // The k-th smallest quantised affinity, k = min(n, floor(q n / 100) + 1) (1-based).
  const int64_t k = std::min<int64_t>(count, static_cast<int64_t>(o.quantile) * count / 100 + 1);
  int64_t seen = 0;
  int level = kAffinityLevels - 1;
  for (size_t i = 0; i < entries; ++i) {
    seen += static_cast<int64_t>(countOf(levels[i]));
    if (seen >= k) {
      level = levelOf(levels[i]);
      break;
    }
  }
  return 1.0 - (level + 0.5) / kAffinityLevels;
}

uint64_t pairKey(int32_t a, int32_t b) {
  if (a > b) std::swap(a, b);
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Entry {
  double score;
  uint64_t key;  // the smallest fragment pair of the edge: the tie-break
  int32_t edge;
  uint32_t version;
};
struct Later {
  bool operator()(const Entry& x, const Entry& y) const {
    if (x.score != y.score) return x.score > y.score;
    return x.key > y.key;
  }
};

// Regions are union-find trees over the nodes; an edge keeps one node of each side (find()
// names its regions now). `between` finds the one live edge between two regions.
class Agglomeration {
 public:
  Agglomeration(const RegionGraph& g, const std::vector<int32_t>& nodes, const AgglomerationOptions& o) : options_(o) {
    const size_t n = nodes.size(), edges = g.edges();
    parent_.resize(n);
    for (size_t i = 0; i < n; ++i) parent_[i] = static_cast<int32_t>(i);
    adjacency_.resize(n);
    degree_.assign(n, 0);
    // Ids 1..n map to their index directly; any other sorted set by binary search.
    const bool dense = n == 0 || (nodes.front() == 1 && nodes.back() == static_cast<int32_t>(n));
    auto indexOf = [&](int32_t id) -> int32_t {
      if (dense) {
        if (id >= 1 && id <= static_cast<int32_t>(n)) return id - 1;
      } else {
        auto it = std::lower_bound(nodes.begin(), nodes.end(), id);
        if (it != nodes.end() && *it == id) return static_cast<int32_t>(it - nodes.begin());
      }
      fail(ErrorCode::Argument, "agglomerate: the region graph names fragment " + std::to_string(id) + ", which is not among the " +
                                    std::to_string(n) + " fragments given");
    };
    end0_.resize(edges);
    end1_.resize(edges);
    count_ = g.count;
    sum_ = g.sum;
    key_.resize(edges);
    version_.assign(edges, 0);
    alive_.assign(edges, 1);
    quantile_ = o.scoring == Scoring::Quantile;
    if (quantile_) {
      if (!g.withLevels) fail(ErrorCode::Argument, "agglomerate: quantile scoring needs a region graph with affinity histograms");
      pool_ = g.levels;
      start_.resize(edges);
      length_.resize(edges);
      for (size_t e = 0; e < edges; ++e) {
        start_[e] = g.levelStart[e];
        length_[e] = static_cast<uint16_t>(g.levelStart[e + 1] - g.levelStart[e]);
      }
    }
    between_ = FlatMap<int32_t>(edges);
    std::vector<Entry> entries;
    entries.reserve(edges);
    for (size_t e = 0; e < edges; ++e) {
      const int32_t u = indexOf(g.a[e]), v = indexOf(g.b[e]);
      if (u == v) fail(ErrorCode::Argument, "agglomerate: the region graph has an edge from fragment " + std::to_string(g.a[e]) + " to itself");
      end0_[e] = u;
      end1_[e] = v;
      key_[e] = pairKey(g.a[e], g.b[e]);
      if (!between_.emplace(pairKey(u, v), static_cast<int32_t>(e)).second) {
        fail(ErrorCode::Argument, "agglomerate: the region graph holds the edge " + std::to_string(g.a[e]) + " - " + std::to_string(g.b[e]) + " twice");
      }
      adjacency_[u].push_back(static_cast<int32_t>(e));
      adjacency_[v].push_back(static_cast<int32_t>(e));
      ++degree_[u];
      ++degree_[v];
      entries.push_back({scoreOf(static_cast<int32_t>(e)), key_[e], static_cast<int32_t>(e), 0});
    }
    // The initial scores sorted once (sequential, cache-friendly); rescored edges go to a heap.
    std::sort(entries.begin(), entries.end(), [](const Entry& x, const Entry& y) { return Later()(y, x); });
    initial_ = std::move(entries);
  }

  // Merges while the lowest-scoring live edge scores below threshold.
  void mergeBelow(double threshold) {
    for (;;) {
      const bool fromInitial = next_ < initial_.size() && (queue_.empty() || Later()(queue_.top(), initial_[next_]));
      if (!fromInitial && queue_.empty()) return;
      const Entry top = fromInitial ? initial_[next_] : queue_.top();
      const bool current = alive_[top.edge] && version_[top.edge] == top.version;  // else a merged or combined edge's old entry
      if (current && !(top.score < threshold)) return;
      if (!fromInitial) {
        queue_.pop();
      } else if (++next_ == initial_.size()) {
        std::vector<Entry>().swap(initial_);  // all consumed: free them
        next_ = 0;
      }
      if (current) mergeAlong(top.edge);
    }
  }

  // Each node's segment, 1.. in the order of the nodes (sorted ids): by smallest fragment id.
  std::vector<int32_t> segments() {
    const size_t n = parent_.size();
    std::vector<int32_t> out(n), idOfRoot(n, 0);
    int32_t next = 0;
    for (size_t i = 0; i < n; ++i) {
      const int32_t r = find(static_cast<int32_t>(i));
      if (idOfRoot[r] == 0) idOfRoot[r] = ++next;
      out[i] = idOfRoot[r];
    }
    return out;
  }

 private:
  int32_t find(int32_t v) {
    while (parent_[v] != v) {
      parent_[v] = parent_[parent_[v]];
      v = parent_[v];
    }
    return v;
  }

  double scoreOf(int32_t e) const {
    return quantile_ ? score(count_[e], sum_[e], pool_.data() + start_[e], length_[e], options_) : score(count_[e], sum_[e], nullptr, 0, options_);
  }

  // The regions of edge e become one. The region with the longer edge list survives (the
  // other's edges are moved or combined: each edge moves O(log) times); which one survives
  // changes no statistic, score or tie-break, so not the result either.
  void mergeAlong(int32_t e) {
    int32_t s = find(end0_[e]), x = find(end1_[e]);
    if (adjacency_[x].size() > adjacency_[s].size() || (adjacency_[x].size() == adjacency_[s].size() && x < s)) std::swap(s, x);
    alive_[e] = 0;
    between_.erase(pairKey(s, x));
    --degree_[s];
    parent_[x] = s;
    std::vector<int32_t> moving;
    moving.swap(adjacency_[x]);
    for (int32_t f : moving) {
      if (!alive_[f]) continue;
      int32_t other = find(end0_[f]);
      if (other == s) other = find(end1_[f]);
      between_.erase(pairKey(x, other));
      if (const int32_t* g = between_.find(pairKey(s, other))) {
        combine(*g, f);
        alive_[f] = 0;
        --degree_[other];
        compact(other);
      } else {
        between_.emplace(pairKey(s, other), f);
        adjacency_[s].push_back(f);
        ++degree_[s];
      }
    }
    compact(s);
  }

  // Edge f's voxel edges join edge g's: exact sums, summed histograms, the smaller tie-break.
  void combine(int32_t g, int32_t f) {
    count_[g] += count_[f];
    sum_[g] += sum_[f];
    key_[g] = std::min(key_[g], key_[f]);
    if (quantile_) {
      const size_t before = pool_.size();
      scratch_.clear();
      mergeLevels(pool_.data() + start_[g], length_[g], pool_.data() + start_[f], length_[f], scratch_);
      garbage_ += length_[g] + length_[f];
      pool_.insert(pool_.end(), scratch_.begin(), scratch_.end());
      start_[g] = before;
      length_[g] = static_cast<uint16_t>(scratch_.size());
      length_[f] = 0;
      if (garbage_ > (uint64_t{1} << 20) && garbage_ * 2 > pool_.size()) compactPool();
    }
    ++version_[g];
    queue_.push({scoreOf(g), key_[g], g, version_[g]});
  }

  // Histograms superseded by combined ones are dropped once they are half the pool.
  void compactPool() {
    std::vector<uint64_t> fresh;
    fresh.reserve(pool_.size() - garbage_);
    for (size_t e = 0; e < start_.size(); ++e) {
      if (!alive_[e]) continue;
      const uint64_t from = start_[e];
      start_[e] = fresh.size();
      fresh.insert(fresh.end(), pool_.begin() + static_cast<std::ptrdiff_t>(from), pool_.begin() + static_cast<std::ptrdiff_t>(from + length_[e]));
    }
    pool_.swap(fresh);
    garbage_ = 0;
  }

  // Drops the dead edges of a node's list once they outnumber the live ones.
  void compact(int32_t node) {
    std::vector<int32_t>& list = adjacency_[node];
    if (list.size() <= 2 * static_cast<size_t>(degree_[node]) + 8) return;
    list.erase(std::remove_if(list.begin(), list.end(), [this](int32_t f) { return !alive_[f]; }), list.end());
  }

  const AgglomerationOptions& options_;
  bool quantile_ = false;
  std::vector<int32_t> parent_;
  std::vector<std::vector<int32_t>> adjacency_;
  std::vector<int32_t> degree_;
  std::vector<int32_t> end0_, end1_;
  std::vector<int64_t> count_, sum_;
  std::vector<uint64_t> key_;
  std::vector<uint32_t> version_;
  std::vector<uint8_t> alive_;
  std::vector<uint64_t> pool_, start_, scratch_;
  std::vector<uint16_t> length_;
  uint64_t garbage_ = 0;
  FlatMap<int32_t> between_;
  std::vector<Entry> initial_;
  size_t next_ = 0;
  std::priority_queue<Entry, std::vector<Entry>, Later> queue_;
};

void checkOptions(const AgglomerationOptions& o) {
  if (o.scoring == Scoring::Quantile && (o.quantile < 0 || o.quantile > 100)) {
    fail(ErrorCode::Argument, "agglomerate: expected a quantile in 0..100, received " + std::to_string(o.quantile));
  }
  for (size_t i = 0; i < o.thresholds.size(); ++i) {
    const double t = o.thresholds[i];
    if (!(t >= 0.0 && t <= 1.0)) fail(ErrorCode::Argument, "agglomerate: expected thresholds in [0, 1], received " + std::to_string(t));
    if (i > 0 && !(t > o.thresholds[i - 1])) fail(ErrorCode::Argument, "agglomerate: expected thresholds in increasing order without repeats");
  }
}

}  // namespace

double edgeScore(const RegionGraph& g, size_t e, const AgglomerationOptions& o) {
  if (o.scoring == Scoring::Quantile) return score(g.count[e], g.sum[e], g.levels.data() + g.levelStart[e], g.levelStart[e + 1] - g.levelStart[e], o);
  return score(g.count[e], g.sum[e], nullptr, 0, o);
}

std::vector<std::vector<int32_t>> agglomerate(const RegionGraph& graph, const std::vector<int32_t>& nodes, const AgglomerationOptions& options) {
  checkOptions(options);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] < 1 || (i > 0 && nodes[i] <= nodes[i - 1])) fail(ErrorCode::Argument, "agglomerate: expected fragment ids > 0, sorted and distinct");
  }
  Agglomeration run(graph, nodes, options);
  std::vector<std::vector<int32_t>> out;
  for (double t : options.thresholds) {
    run.mergeBelow(t);
    out.push_back(run.segments());
  }
  return out;
}

std::vector<int32_t> relabel(const int32_t* ids, int64_t n, const int32_t* table, int64_t tableSize) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= tableSize) {
      fail(ErrorCode::Argument, "relabel: id " + std::to_string(id) + " at index " + std::to_string(i) + " is outside the lookup table (0.." +
                                    std::to_string(tableSize - 1) + ")");
    }
    out[i] = id == 0 ? 0 : table[id];
  }
  return out;
}

}  // namespace segvol::metrics
