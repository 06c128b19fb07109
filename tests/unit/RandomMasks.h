//===- RandomMasks.h - Random mask specs and brute-force planes -*- C++ -*-===//
//
// Test support shared by the property tests of tiles (TilesTest) and of the
// runtime's schedule tables (ScheduleTableTest): a generator of random masks
// of every family and composition, and the brute-force predicate over a
// whole plane, summed for O(1) rectangle counts.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_TESTS_UNIT_RANDOMMASKS_H
#define ATTNC_TESTS_UNIT_RANDOMMASKS_H

#include "attnc/Mask/Tiles.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace attnc::mask::testing {

/// Random specs of every family and composition, sized for a plane of n
/// tokens a side.
class SpecGen {
public:
  explicit SpecGen(uint64_t seed) : rng_(seed) {}

  int64_t uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  bool chance(int percent) { return uniform(0, 99) < percent; }
  /// Log-uniform in [lo, hi], lo >= 1.
  int64_t logUniform(int64_t lo, int64_t hi) {
    double x = std::uniform_real_distribution<double>(std::log(static_cast<double>(lo)),
                                                      std::log(static_cast<double>(hi) + 1))(rng_);
    return std::clamp<int64_t>(static_cast<int64_t>(std::exp(x)), lo, hi);
  }

  /// A window side: mostly up to n, sometimes unbounded or negative.
  int64_t side(int64_t n) {
    if (chance(10))
      return kUnbounded;
    if (chance(5))
      return -uniform(1, 4);
    return logUniform(1, n + 1) - 1;
  }

  Mask leaf(int64_t n) {
    int64_t pick = uniform(0, 99);
    if (pick < 4)
      return Mask::full();
    if (pick < 14)
      return Mask::causal();
    if (pick < 30)
      return Mask::window(side(n), side(n), 1);
    if (pick < 42) {
      int64_t d = uniform(2, 5);
      return Mask::window(side(n / d + 1), side(n / d + 1), d);
    }
    if (pick < 52) {
      std::vector<int64_t> tokens(static_cast<size_t>(uniform(1, 6)));
      for (int64_t &t : tokens)
        t = uniform(-2, n + 2);
      return Mask::globalTokens(tokens);
    }
    if (pick < 58) {
      std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<size_t>(uniform(1, 3)));
      for (auto &r : ranges) {
        r.first = uniform(-3, n);
        r.second = r.first + logUniform(1, n / 4 + 2) - 1;
      }
      return Mask::globalRanges(ranges);
    }
    if (pick < 64)
      return Mask::globalStride(logUniform(1, n + 1), uniform(-3, n / 2 + 1));
    if (pick < 70)
      return Mask::globalRuntime(8);
    if (pick < 88) {
      int64_t block = logUniform(1, n / 2 + 1);
      int64_t blocks = (n + block - 1) / block;
      std::vector<std::vector<int64_t>> layout(
          static_cast<size_t>(std::max<int64_t>(0, blocks + uniform(-2, 2))));
      for (auto &row : layout) {
        if (blocks <= 64 && chance(15)) {
          for (int64_t c = 0; c < blocks; ++c)
            row.push_back(c);
          continue;
        }
        row.resize(static_cast<size_t>(uniform(0, 6)));
        for (int64_t &c : row)
          c = uniform(-1, blocks + 1);
      }
      return Mask::blockSparse(block, layout);
    }
    BigBirdParams p;
    p.block = logUniform(1, n / 2 + 1);
    p.band = uniform(0, 4);
    p.random = uniform(0, 3);
    p.global = uniform(0, 2);
    p.seed = static_cast<uint64_t>(uniform(0, 1 << 20));
    return Mask::bigBird(p);
  }

  Mask tree(int depth, int64_t n) {
    if (depth == 0 || chance(40))
      return leaf(n);
    std::vector<Mask> children(static_cast<size_t>(uniform(2, 4)));
    for (Mask &c : children)
      c = tree(depth - 1, n);
    return chance(50) ? Mask::unionOf(children) : Mask::intersectOf(children);
  }

private:
  std::mt19937_64 rng_;
};

/// The allowed count of every rectangle, from 2-D prefix sums of the
/// brute-force predicate made in one pass over the plane.
class Plane {
public:
  Plane(const Mask &mask, const Extent &e)
      : nk_(e.nk), sums_(static_cast<size_t>((e.nq + 1) * (e.nk + 1))) {
    Predicate pred(mask, e);
    for (int64_t i = 0; i < e.nq; ++i) {
      int32_t rowSum = 0;
      for (int64_t k = 0; k < e.nk; ++k) {
        rowSum += pred.allowed(i, k);
        at(i + 1, k + 1) = at(i, k + 1) + rowSum;
      }
    }
  }

  int64_t count(const Rect &r) const {
    return at(r.row1, r.col1) - at(r.row0, r.col1) - at(r.row1, r.col0) + at(r.row0, r.col0);
  }

private:
  int32_t &at(int64_t i, int64_t k) { return sums_[static_cast<size_t>(i * (nk_ + 1) + k)]; }
  int32_t at(int64_t i, int64_t k) const { return sums_[static_cast<size_t>(i * (nk_ + 1) + k)]; }

  int64_t nk_;
  std::vector<int32_t> sums_;
};

/// The class of a rectangle holding `count` allowed pairs.
inline TileClass expectedClass(int64_t count, const Rect &r) {
  return count == 0 ? TileClass::Empty : count == r.area() ? TileClass::Full : TileClass::Partial;
}

/// Whether query row i may attend to key k, from the plane's sums.
inline bool allowedIn(const Plane &plane, int64_t i, int64_t k) {
  return plane.count(Rect{i, i + 1, k, k + 1}) != 0;
}

} // namespace attnc::mask::testing

#endif // ATTNC_TESTS_UNIT_RANDOMMASKS_H
