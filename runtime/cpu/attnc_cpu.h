//===- attnc_cpu.h - Helpers of generated CPU kernels -----------*- C++ -*-===//
//
// Small, documented helpers that every kernel emitted by attnc's emit-cpp
// includes: element conversions, the base-2 exponential and a worker pool.
// The runtime writes this header next to the kernel source it compiles.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_CPU_H
#define ATTNC_CPU_H

#include "kernel_abi.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace attnc_cpu {

/// log2(e): exp(x) == exp2(x * kLog2e).
constexpr float kLog2e = 1.4426950408889634f;
/// ln(2): log(x) == log2(x) * kLn2.
constexpr float kLn2 = 0.6931471805599453f;

/// bfloat16 bits -> float (exact).
inline float bf16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float -> bfloat16 bits, rounding to nearest even (NaN stays NaN).
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// IEEE half bits -> float (exact, subnormals included).
inline float fp16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  uint32_t u;
  if (exponent == 0x1f) {
    u = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    u = sign;
  } else { // subnormal: normalize
    int shift = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shift;
    }
    u = sign | ((113 - shift) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float -> IEEE half bits, rounding to nearest even; overflow gives inf.
inline uint16_t floatToFp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u) // NaN
    return static_cast<uint16_t>(sign | 0x7e00u);
  if (absBits >= 0x477ff000u) // rounds to >= 65520: inf
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (absBits < 0x38800000u) { // below the smallest normal: subnormal or zero
    float a;
    std::memcpy(&a, &absBits, sizeof a);
    // a / 2^-24 rounded to nearest even is the subnormal mantissa.
    float scaled = a * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t rounded = absBits + 0xfffu + ((absBits >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

/// Element `i` of a bf16 or fp16 buffer as float.
template <bool IsBf16> inline float load(const uint16_t *p, int64_t i) {
  return IsBf16 ? bf16ToFloat(p[i]) : fp16ToFloat(p[i]);
}

/// Stores `v` rounded to bf16 or fp16.
template <bool IsBf16> inline void store(uint16_t *p, int64_t i, float v) {
  p[i] = IsBf16 ? floatToBf16(v) : floatToFp16(v);
}

/// Runs body(item) for item in [0, items) on `threads` workers (>= 1).
template <typename Body> void parallelFor(int64_t items, int threads, const Body &body) {
  if (threads <= 1 || items <= 1) {
    for (int64_t i = 0; i < items; ++i)
      body(i);
    return;
  }
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    for (int64_t i = next++; i < items; i = next++)
      body(i);
  };
  std::vector<std::thread> pool;
  int n = static_cast<int>(std::min<int64_t>(threads, items));
  for (int t = 1; t < n; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

//===----------------------------------------------------------------------===//
// Tiles of the flash loop: f32 values, row-major
//===----------------------------------------------------------------------===//

/// A (R, C) tile of f32 values.
template <int64_t R, int64_t C> struct Tile {
  float v[R][C];
};

/// A (R) vector of per-row values (m, l, LSE).
template <int64_t R> struct Row {
  float v[R];
};

/// Sets every element of a row vector.
template <int64_t R> void fill(Row<R> &row, float value) { std::fill(row.v, row.v + R, value); }

/// Sets every element of a tile.
template <int64_t R, int64_t C> void fill(Tile<R, C> &tile, float value) {
  std::fill(&tile.v[0][0], &tile.v[0][0] + R * C, value);
}

/// Loads rows [tile * R, tile * R + R) of a [B, N, H, D] tensor at (b, head)
/// as f32 times `scale`; rows past N are zero.
template <bool IsBf16, int64_t R, int64_t D>
void loadTile(const attnc_tensor_view &t, int64_t b, int64_t tile, int64_t head, float scale,
              Tile<R, D> &out) {
  const uint16_t *data = static_cast<const uint16_t *>(t.data);
  for (int64_t r = 0; r < R; ++r) {
    int64_t n = tile * R + r;
    if (n >= t.shape[1]) {
      std::fill(out.v[r], out.v[r] + D, 0.0f);
      continue;
    }
    const uint16_t *row = data + b * t.strides[0] + n * t.strides[1] + head * t.strides[2];
    for (int64_t d = 0; d < D; ++d)
      out.v[r][d] = load<IsBf16>(row, d) * scale;
  }
}

/// S = Q K^T.
template <int64_t M, int64_t N, int64_t D>
void qk(const Tile<M, D> &q, const Tile<N, D> &k, Tile<M, N> &s) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float dot = 0.0f;
      for (int64_t d = 0; d < D; ++d)
        dot += q.v[i][d] * k.v[j][d];
      s.v[i][j] = dot;
    }
}

/// The closed form of a banded mask, bounds tightened to multiples of the
/// period: allowed iff lo <= p - k <= hi and (p - k) % period == 0; lo > hi
/// allows nothing. Unbounded sides are +-kUnbounded.
struct Band {
  int64_t lo, hi, period;
};

/// A window side without bound.
constexpr int64_t kUnbounded = INT64_MAX;

/// Floor division for any signs (b > 0).
constexpr int64_t floorDiv(int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }
/// Ceiling division for any signs (b > 0).
constexpr int64_t ceilDiv(int64_t a, int64_t b) { return a / b + (a % b > 0 ? 1 : 0); }

/// The band of {lo, hi, period} with lo and hi moved inward to multiples of the period.
constexpr Band tightenBand(int64_t lo, int64_t hi, int64_t period) {
  int64_t l = lo == -kUnbounded ? -kUnbounded : ceilDiv(lo, period) * period;
  int64_t h = hi == kUnbounded ? kUnbounded : floorDiv(hi, period) * period;
  return l > h ? Band{kUnbounded, -kUnbounded, period} : Band{l, h, period};
}

/// Whether query position p may attend key k under the band.
inline bool bandAllows(const Band &band, int64_t p, int64_t k) {
  int64_t delta = p - k;
  return delta >= band.lo && delta <= band.hi && delta % band.period == 0;
}

/// Classes of a tile (the values of mask::TileClass).
enum class TileClass { Empty = 0, Partial = 1, Full = 2 };

/// Multiples of d (> 0) in [a, b] (a <= b + 1).
inline int64_t countMultiples(int64_t a, int64_t b, int64_t d) {
  return d == 1 ? b - a + 1 : floorDiv(b, d) - ceilDiv(a, d) + 1;
}

/// Exact class of positions [p0, p1] x keys [k0, k1] under the band.
inline TileClass bandTileClass(const Band &band, int64_t p0, int64_t p1, int64_t k0, int64_t k1) {
  int64_t dmin = p0 - k1, dmax = p1 - k0;
  int64_t a = std::max(band.lo, dmin), b = std::min(band.hi, dmax);
  if (a > b || countMultiples(a, b, band.period) == 0)
    return TileClass::Empty;
  if (dmin >= band.lo && dmax <= band.hi && (band.period == 1 || dmin == dmax))
    return TileClass::Full;
  return TileClass::Partial;
}

/// The kv tiles [first, last] that query tile qt may touch under the band
/// (first > last when none), with M x N tiles over nq x nk.
inline void bandColumnTiles(const Band &band, int64_t qt, int64_t M, int64_t N, int64_t nq,
                            int64_t nk, int64_t &first, int64_t &last) {
  int64_t p0 = qt * M + nk - nq, p1 = std::min(nq, (qt + 1) * M) - 1 + nk - nq;
  // Keys k with p - k in [lo, hi]: k in [p0 - hi, p1 - lo], clipped to [0, nk)
  // (in 128 bits: the bounds may be near +-2^63).
  __int128 lowKey = static_cast<__int128>(p0) - band.hi;
  __int128 highKey = static_cast<__int128>(p1) - band.lo;
  int64_t k0 = lowKey < 0 ? 0 : static_cast<int64_t>(std::min<__int128>(lowKey, nk));
  int64_t k1 = highKey > nk - 1 ? nk - 1 : static_cast<int64_t>(std::max<__int128>(highKey, -1));
  if (band.lo > band.hi || k0 > k1) {
    first = 0;
    last = -1;
    return;
  }
  first = k0 / N;
  last = k1 / N;
}

/// The query tiles [first, last] that may see kv tile kt under the band
/// (first > last when none), with M x N tiles over nq x nk: the mirror of
/// bandColumnTiles, for the backward's kv-stationary loop.
inline void bandRowTiles(const Band &band, int64_t kt, int64_t M, int64_t N, int64_t nq,
                         int64_t nk, int64_t &first, int64_t &last) {
  int64_t k0 = kt * N, k1 = std::min(nk, (kt + 1) * N) - 1;
  // Positions p with p - k in [lo, hi] for a key k in [k0, k1]: p in
  // [k0 + lo, k1 + hi]; rows i = p - (nk - nq), clipped to [0, nq) (in 128
  // bits: the bounds may be near +-2^63).
  __int128 lowRow = static_cast<__int128>(k0) + band.lo - (nk - nq);
  __int128 highRow = static_cast<__int128>(k1) + band.hi - (nk - nq);
  int64_t i0 = lowRow < 0 ? 0 : static_cast<int64_t>(std::min<__int128>(lowRow, nq));
  int64_t i1 = highRow > nq - 1 ? nq - 1 : static_cast<int64_t>(std::max<__int128>(highRow, -1));
  if (band.lo > band.hi || i0 > i1) {
    first = 0;
    last = -1;
    return;
  }
  first = i0 / M;
  last = i1 / M;
}

/// The class of kv tile kt for query tile qt under the band (clipped tiles).
inline TileClass bandTile(const Band &band, int64_t qt, int64_t kt, int64_t M, int64_t N,
                          int64_t nq, int64_t nk) {
  int64_t p0 = qt * M + nk - nq, p1 = std::min(nq, (qt + 1) * M) - 1 + nk - nq;
  return bandTileClass(band, p0, p1, kt * N, std::min(nk, (kt + 1) * N) - 1);
}

/// Masks a band tile: on PARTIAL tiles every forbidden pair becomes -inf; on
/// every tile the keys past nk do.
template <int64_t M, int64_t N>
void maskBand(Tile<M, N> &s, const Band &band, int64_t qt, int64_t kt, bool partial, int64_t nq,
              int64_t nk) {
  const int64_t validKeys = std::min<int64_t>(N, nk - kt * N);
  for (int64_t i = 0; i < M; ++i) {
    int64_t p = qt * M + i + nk - nq;
    for (int64_t j = 0; j < N; ++j)
      if (j >= validKeys || (partial && !bandAllows(band, p, kt * N + j)))
        s.v[i][j] = -INFINITY;
  }
}

/// Masks a table tile: on PARTIAL tiles the bits of `entry` say which pairs
/// are allowed (kernel_abi.h); on every tile the keys past nk become -inf.
template <int64_t M, int64_t N>
void maskBits(Tile<M, N> &s, const attnc_schedule_table &table, int64_t entry, int64_t kt,
              bool partial, int64_t nk) {
  const int64_t validKeys = std::min<int64_t>(N, nk - kt * N);
  const uint64_t *bits = partial ? table.bits + table.bit_offsets[entry] : nullptr;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      bool allowed = j < validKeys &&
                     (!partial || ((bits[i * table.words_per_row + j / 64] >> (j % 64)) & 1u));
      if (!allowed)
        s.v[i][j] = -INFINITY;
    }
}

/// m_new = max(m, rowmax(S)).
template <int64_t M, int64_t N>
void rowMax(const Tile<M, N> &s, const Row<M> &m, Row<M> &out) {
  for (int64_t i = 0; i < M; ++i)
    out.v[i] = std::max(m.v[i], *std::max_element(s.v[i], s.v[i] + N));
}

/// P = exp2(S - m_new), 0 where S = -inf or the whole row is masked so far.
template <int64_t M, int64_t N>
void exp2Diff(const Tile<M, N> &s, const Row<M> &m, Tile<M, N> &p) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      p.v[i][j] = m.v[i] == -INFINITY ? 0.0f : std::exp2(s.v[i][j] - m.v[i]);
}

/// alpha = exp2(m_old - m_new), 0 where m_old = -inf (nothing to rescale).
template <int64_t M> void rescale(const Row<M> &mOld, const Row<M> &mNew, Row<M> &alpha) {
  for (int64_t i = 0; i < M; ++i)
    alpha.v[i] = mOld.v[i] == -INFINITY ? 0.0f : std::exp2(mOld.v[i] - mNew.v[i]);
}

/// l_new = alpha * l + rowsum(P).
template <int64_t M, int64_t N>
void rowSumUpdate(const Row<M> &l, const Row<M> &alpha, const Tile<M, N> &p, Row<M> &out) {
  for (int64_t i = 0; i < M; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < N; ++j)
      sum += p.v[i][j];
    out.v[i] = alpha.v[i] * l.v[i] + sum;
  }
}

/// O_new = alpha * O + P V.
template <int64_t M, int64_t N, int64_t D>
void pvUpdate(const Tile<M, D> &acc, const Row<M> &alpha, const Tile<M, N> &p, const Tile<N, D> &v,
              Tile<M, D> &out) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t d = 0; d < D; ++d)
      out.v[i][d] = alpha.v[i] * acc.v[i][d];
    for (int64_t j = 0; j < N; ++j) {
      float pij = p.v[i][j];
      if (pij == 0.0f)
        continue;
      for (int64_t d = 0; d < D; ++d)
        out.v[i][d] += pij * v.v[j][d];
    }
  }
}

/// O = acc / l and LSE = (m + log2 l) * ln 2; O = 0 and LSE = -inf where l = 0.
template <int64_t M, int64_t D>
void finalize(const Row<M> &m, const Row<M> &l, const Tile<M, D> &acc, Tile<M, D> &o, Row<M> &lse) {
  for (int64_t i = 0; i < M; ++i) {
    bool empty = l.v[i] == 0.0f;
    float inv = empty ? 0.0f : 1.0f / l.v[i];
    for (int64_t d = 0; d < D; ++d)
      o.v[i][d] = acc.v[i][d] * inv;
    lse.v[i] = empty ? -INFINITY : (m.v[i] + std::log2(l.v[i])) * kLn2;
  }
}

/// Stores the rows of an O tile that lie inside the [B, Nq, Hq, D] output.
template <bool IsBf16, int64_t M, int64_t D>
void storeTile(const attnc_tensor_view &t, int64_t b, int64_t tile, int64_t head,
               const Tile<M, D> &o) {
  uint16_t *data = static_cast<uint16_t *>(t.data);
  for (int64_t r = 0; r < M && tile * M + r < t.shape[1]; ++r) {
    uint16_t *row = data + b * t.strides[0] + (tile * M + r) * t.strides[1] + head * t.strides[2];
    for (int64_t d = 0; d < D; ++d)
      store<IsBf16>(row, d, o.v[r][d]);
  }
}

/// Stores the rows of an LSE tile that lie inside the [B, Hq, Nq] float32 output.
template <int64_t M>
void storeLse(const attnc_tensor_view &t, int64_t b, int64_t head, int64_t tile, const Row<M> &lse) {
  float *data = static_cast<float *>(t.data);
  for (int64_t r = 0; r < M && tile * M + r < t.shape[2]; ++r)
    data[b * t.strides[0] + head * t.strides[1] + (tile * M + r) * t.strides[2]] = lse.v[r];
}

//===----------------------------------------------------------------------===//
// The backward pass (attn.attention_grad): P recomputed from the saved LSE.
// Scores are unscaled here (Q is loaded as is: dK needs it); recomputeP
// applies scale * log2(e). Names ending in T take transposed tiles (keys by
// query rows) of the kv-stationary pass, whose row vectors index columns.
//===----------------------------------------------------------------------===//

/// delta = rowsum(dO * O) for query tile qt of head h (float32 [B, Hq, Nq]).
template <bool IsBf16, int64_t M, int64_t D>
void computeDelta(const attnc_backward_args &args, int64_t b, int64_t h, int64_t qt) {
  const uint16_t *o = static_cast<const uint16_t *>(args.o.data);
  const uint16_t *dO = static_cast<const uint16_t *>(args.d_o.data);
  float *delta = static_cast<float *>(args.delta.data);
  for (int64_t i = qt * M; i < std::min(args.nq, (qt + 1) * M); ++i) {
    const uint16_t *oRow = o + b * args.o.strides[0] + i * args.o.strides[1] + h * args.o.strides[2];
    const uint16_t *dRow =
        dO + b * args.d_o.strides[0] + i * args.d_o.strides[1] + h * args.d_o.strides[2];
    float sum = 0.0f;
    for (int64_t d = 0; d < D; ++d)
      sum += load<IsBf16>(oRow, d) * load<IsBf16>(dRow, d);
    delta[b * args.delta.strides[0] + h * args.delta.strides[1] + i * args.delta.strides[2]] = sum;
  }
}

/// Loads rows [tile * M, tile * M + M) of a float32 [B, H, N] tensor (LSE or
/// delta) at (b, head); rows past N get `pastEnd`.
template <int64_t M>
void loadRow(const attnc_tensor_view &t, int64_t b, int64_t head, int64_t tile, float pastEnd,
             Row<M> &out) {
  const float *data = static_cast<const float *>(t.data);
  for (int64_t r = 0; r < M; ++r) {
    int64_t n = tile * M + r;
    out.v[r] = n < t.shape[2] ? data[b * t.strides[0] + head * t.strides[1] + n * t.strides[2]]
                              : pastEnd;
  }
}

/// Masks a transposed band tile S^T (keys by query rows): on PARTIAL tiles
/// every forbidden pair becomes -inf; on every tile the keys past nk do.
template <int64_t N, int64_t M>
void maskBandT(Tile<N, M> &st, const Band &band, int64_t qt, int64_t kt, bool partial, int64_t nq,
               int64_t nk) {
  const int64_t validKeys = std::min<int64_t>(N, nk - kt * N);
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < M; ++i)
      if (j >= validKeys || (partial && !bandAllows(band, qt * M + i + nk - nq, kt * N + j)))
        st.v[j][i] = -INFINITY;
}

/// Masks a transposed table tile: the bits of column-table entry `entry`
/// (forward layout, query rows of words) say which pairs are allowed.
template <int64_t N, int64_t M>
void maskBitsT(Tile<N, M> &st, const attnc_schedule_table &columns, int64_t entry, int64_t kt,
               bool partial, int64_t nk) {
  const int64_t validKeys = std::min<int64_t>(N, nk - kt * N);
  const uint64_t *bits = partial ? columns.bits + columns.bit_offsets[entry] : nullptr;
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < M; ++i) {
      bool allowed = j < validKeys &&
                     (!partial || ((bits[i * columns.words_per_row + j / 64] >> (j % 64)) & 1u));
      if (!allowed)
        st.v[j][i] = -INFINITY;
    }
}

/// P = exp2(S * scaleLog2 - LSE * log2(e)): 0 where S = -inf and on rows
/// with LSE = -inf (fully masked), never NaN.
inline float recomputedProbability(float s, float lse, float scaleLog2) {
  return s == -INFINITY || lse == -INFINITY ? 0.0f : std::exp2(s * scaleLog2 - lse * kLog2e);
}

/// P = exp2(S * scaleLog2 - LSE * log2 e), LSE per row.
template <int64_t M, int64_t N>
void recomputeP(const Tile<M, N> &s, const Row<M> &lse, float scaleLog2, Tile<M, N> &p) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      p.v[i][j] = recomputedProbability(s.v[i][j], lse.v[i], scaleLog2);
}

/// P^T from S^T, LSE per column.
template <int64_t N, int64_t M>
void recomputePT(const Tile<N, M> &st, const Row<M> &lse, float scaleLog2, Tile<N, M> &pt) {
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < M; ++i)
      pt.v[j][i] = recomputedProbability(st.v[j][i], lse.v[i], scaleLog2);
}

/// dS = P * (dP - delta), delta per row.
template <int64_t M, int64_t N>
void dScores(const Tile<M, N> &p, const Tile<M, N> &dp, const Row<M> &delta, Tile<M, N> &out) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      out.v[i][j] = p.v[i][j] == 0.0f ? 0.0f : p.v[i][j] * (dp.v[i][j] - delta.v[i]);
}

/// dS^T = P^T * (dP^T - delta), delta per column.
template <int64_t N, int64_t M>
void dScoresT(const Tile<N, M> &pt, const Tile<N, M> &dpt, const Row<M> &delta, Tile<N, M> &out) {
  for (int64_t j = 0; j < N; ++j)
    for (int64_t i = 0; i < M; ++i)
      out.v[j][i] = pt.v[j][i] == 0.0f ? 0.0f : pt.v[j][i] * (dpt.v[j][i] - delta.v[i]);
}

/// out = acc + A B for an (R, K) A and a (K, C) B.
template <int64_t R, int64_t K, int64_t C>
void matmulAcc(const Tile<R, C> &acc, const Tile<R, K> &a, const Tile<K, C> &b, Tile<R, C> &out) {
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c)
      out.v[r][c] = acc.v[r][c];
    for (int64_t k = 0; k < K; ++k) {
      float x = a.v[r][k];
      if (x == 0.0f)
        continue;
      for (int64_t c = 0; c < C; ++c)
        out.v[r][c] += x * b.v[k][c];
    }
  }
}

/// Stores scale * g for the rows of a gradient tile that lie inside the
/// [B, N, H, D] gradient tensor (dQ, dK or dV).
template <bool IsBf16, int64_t R, int64_t D>
void storeGrad(const attnc_tensor_view &t, int64_t b, int64_t tile, int64_t head,
               const Tile<R, D> &g, float scale) {
  uint16_t *data = static_cast<uint16_t *>(t.data);
  for (int64_t r = 0; r < R && tile * R + r < t.shape[1]; ++r) {
    uint16_t *row = data + b * t.strides[0] + (tile * R + r) * t.strides[1] + head * t.strides[2];
    for (int64_t d = 0; d < D; ++d)
      store<IsBf16>(row, d, g.v[r][d] * scale);
  }
}

} // namespace attnc_cpu

#endif // ATTNC_CPU_H
