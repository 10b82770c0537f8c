// Multi-scale deformable attention on CPU without torch: the sampling loops
// of forward and backward over plain arrays, shared by the torch op
// (ms_deform_attn_cpu.cpp) and the OpenVINO extension
// (mmdet_detr/deploy/custom_op/openvino/), which parallelise the tasks with
// their own thread pools.
//
// Symbols: B batch, S = sum_l H_l * W_l value tokens, Q queries, M heads,
// D channels per head, L levels, P sampling points per level and head.
//
// Each sampling point is bilinearly sampled straight from value and added,
// times its attention weight, to the output; the (B*M, D, Q, L*P) tensor of
// sampled values that the PyTorch path builds never exists. The loops over D
// run over contiguous memory and carry `omp simd`, so they vectorise; on x86
// CPUs with AVX2 they run a second compilation of the same loops with 256-bit
// vectors (see forward_tasks_avx2), as the build targets baseline x86-64.
//
// Determinism: every output element, every gradient of a sampling location or
// attention weight, and every row of grad_value is written by one thread in a
// fixed order, so results do not depend on the number of threads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#define MSDA_X86_DISPATCH 1
#define MSDA_ALWAYS_INLINE __attribute__((always_inline))
#else
#define MSDA_X86_DISPATCH 0
#define MSDA_ALWAYS_INLINE
#endif

namespace mmdet_detr {
namespace msda {

// The four pixels around one sampling point and their bilinear weights.
// Corner k is (y_low + k / 2, x_low + k % 2).
template <typename scalar_t>
struct BilinearPoint {
  int64_t pixel[4];     // y * W + x inside the level; -1 outside the map
  scalar_t weight[4];   // (1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly*lx
  scalar_t lx, ly;      // x - x_low, y - y_low
};

// Locates (loc_x, loc_y) in [0, 1] on an H x W map the way
// grid_sample(align_corners=False, padding_mode='zeros') and mmcv's CUDA
// ms_deform_attn_im2col_bilinear do: pixel centres sit at (i + 0.5) / W and
// corners outside the map hold zeros. Returns false when no corner lies
// inside the map (also for NaN locations), i.e. the point samples zero and
// has zero gradient.
template <typename scalar_t>
MSDA_ALWAYS_INLINE inline bool locate(scalar_t loc_x, scalar_t loc_y,
                                      int64_t H, int64_t W,
                                      BilinearPoint<scalar_t>& pt) {
  const scalar_t x = loc_x * static_cast<scalar_t>(W) - scalar_t(0.5);
  const scalar_t y = loc_y * static_cast<scalar_t>(H) - scalar_t(0.5);
  // x in [-1, W) is exactly the range where x_low or x_low + 1 is in
  // [0, W - 1]. mmcv's kernel tests x > -1 instead, which differs only in
  // the location gradient on the line x == -1, where grid_sample (the
  // reference) still counts the in-map corner.
  if (!(x >= -1 && y >= -1 && x < W && y < H)) {
    return false;
  }
  const int64_t x_low = static_cast<int64_t>(std::floor(x));
  const int64_t y_low = static_cast<int64_t>(std::floor(y));
  pt.lx = x - static_cast<scalar_t>(x_low);
  pt.ly = y - static_cast<scalar_t>(y_low);
  const scalar_t hx = 1 - pt.lx;
  const scalar_t hy = 1 - pt.ly;
  pt.weight[0] = hy * hx;
  pt.weight[1] = hy * pt.lx;
  pt.weight[2] = pt.ly * hx;
  pt.weight[3] = pt.ly * pt.lx;
  for (int k = 0; k < 4; ++k) {
    const int64_t xk = x_low + k % 2;
    const int64_t yk = y_low + k / 2;
    const bool inside = xk >= 0 && xk < W && yk >= 0 && yk < H;
    pt.pixel[k] = inside ? yk * W + xk : -1;
  }
  return true;
}

// Treats corners on padded tokens as outside the map: they sample zero and
// receive no gradient, as if value had been zeroed there. `padded` points at
// the level's first token of one image, or is null when nothing is padded.
template <typename scalar_t>
MSDA_ALWAYS_INLINE inline void drop_padded(const bool* padded,
                                           BilinearPoint<scalar_t>& pt) {
  if (padded == nullptr) {
    return;
  }
  for (int k = 0; k < 4; ++k) {
    if (pt.pixel[k] >= 0 && padded[pt.pixel[k]]) {
      pt.pixel[k] = -1;
    }
  }
}
// Why the levels (H_l, W_l) = shapes[2 l], shapes[2 l + 1] starting at
// token starts[l] do not tile a value of S tokens, or "" when they do: every
// level must fit inside value, so the kernels never read outside, and no two
// levels may overlap, as the backward gives each level's rows of grad_value
// to one thread.
inline std::string level_layout_error(const int64_t* shapes,
                                      const int64_t* starts, int64_t L,
                                      int64_t S) {
  std::ostringstream error;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
    if (!(H >= 0 && W >= 0 && starts[l] >= 0 && starts[l] + H * W <= S)) {
      error << "level " << l << " of shape (" << H << ", " << W
            << ") starting at token " << starts[l] << " does not fit in "
            << "value's " << S << " tokens; spatial_shapes and "
            << "level_start_index must describe value";
      return error.str();
    }
    for (int64_t k = 0; k < l; ++k) {
      const int64_t size_k = shapes[2 * k] * shapes[2 * k + 1];
      if (!(H * W == 0 || size_k == 0 || starts[l] + H * W <= starts[k] ||
            starts[k] + size_k <= starts[l])) {
        error << "levels " << k << " and " << l << " overlap in value's "
              << "tokens (level_start_index " << starts[k] << " and "
              << starts[l] << "); every token must belong to one level";
        return error.str();
      }
    }
  }
  return error.str();
}

// Pointers and sizes of one call; all tensors contiguous.
template <typename scalar_t>
struct Problem {
  const scalar_t* value;        // B, S, M, D
  const int64_t* shapes;        // L, 2 as (H_l, W_l)
  const int64_t* starts;        // L
  const scalar_t* locations;    // B, Q, M, L, P, 2
  const scalar_t* weights;      // B, Q, M, L, P
  const bool* padded;           // B, S, True at padded tokens; or null
  int64_t B, S, Q, M, D, L, P;

  // padded + (b, first token of level l), or null.
  const bool* padded_level(int64_t b, int64_t l) const {
    return padded == nullptr ? nullptr : padded + b * S + starts[l];
  }
};

// Forward of the tasks [begin, end), one task per (b, m, q) with q fastest:
// a task owns output[b, q, m * D : (m + 1) * D], and a thread keeps
// sampling one head of one image, whose S * D numbers of value stay in
// cache. output (B, Q, M * D) is zero on entry.
template <typename scalar_t>
MSDA_ALWAYS_INLINE inline void forward_tasks(const Problem<scalar_t>& pb,
                                             scalar_t* output, int64_t begin,
                                             int64_t end) {
  const int64_t Q = pb.Q, M = pb.M, D = pb.D, L = pb.L, P = pb.P;
  const int64_t row_stride = M * D;  // between tokens of value
  const std::vector<scalar_t> zero_row(D, scalar_t(0));  // outside corners
  BilinearPoint<scalar_t> pt;
  for (int64_t task = begin; task < end; ++task) {  // task = (b*M + m)*Q + q
    const int64_t q = task % Q;
    const int64_t m = (task / Q) % M;
    const int64_t b = task / (Q * M);
    const int64_t item = (b * Q + q) * M + m;  // index of (b, q, m)
    scalar_t* __restrict out = output + item * D;
    const scalar_t* loc = pb.locations + item * L * P * 2;
    const scalar_t* weight = pb.weights + item * L * P;
    const scalar_t* value_bm = pb.value + b * pb.S * row_stride + m * D;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t H = pb.shapes[2 * l], W = pb.shapes[2 * l + 1];
      const scalar_t* value_l = value_bm + pb.starts[l] * row_stride;
      const bool* padded = pb.padded_level(b, l);
      for (int64_t p = 0; p < P; ++p, loc += 2, ++weight) {
        if (!locate(loc[0], loc[1], H, W, pt)) {
          continue;
        }
        drop_padded(padded, pt);
        const scalar_t* v[4];
        scalar_t c[4];  // attention weight times bilinear weight
        for (int k = 0; k < 4; ++k) {
          v[k] = pt.pixel[k] >= 0 ? value_l + pt.pixel[k] * row_stride
                                  : zero_row.data();
          c[k] = *weight * pt.weight[k];
        }
        const scalar_t *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          out[d] += c[0] * v0[d] + c[1] * v1[d] + c[2] * v2[d] + c[3] * v3[d];
        }
      }
    }
  }
}

// Backward of the tasks [begin, end). A task is one (b, m) and one of
// `groups` equal slices of the levels (groups is 1 or L): it owns those
// levels' rows of grad_value[b, :, m, :] (levels do not overlap), so no two
// threads add into the same row. It walks queries, then levels, then points
// in order, so every row receives its terms in the same order whatever the
// grouping. grad_value is zero on entry; every gradient of a location and
// weight is written once.
template <typename scalar_t>
MSDA_ALWAYS_INLINE inline void backward_tasks(
    const Problem<scalar_t>& pb, const scalar_t* grad_output,
    scalar_t* grad_value, scalar_t* grad_locations, scalar_t* grad_weights,
    int64_t groups, int64_t begin, int64_t end) {
  const int64_t Q = pb.Q, M = pb.M, D = pb.D, L = pb.L, P = pb.P;
  const int64_t row_stride = M * D;
  const int64_t levels_per_task = L / groups;
  const std::vector<scalar_t> zero_row(D, scalar_t(0));
  // Gradients of outside corners are written here and dropped; one row per
  // corner keeps the four destination rows of a point distinct.
  std::vector<scalar_t> sink_rows(4 * D);
  BilinearPoint<scalar_t> pt;
  for (int64_t task = begin; task < end; ++task) {  // (b*M + m)*groups + i
    const int64_t level_begin = (task % groups) * levels_per_task;
    const int64_t level_end = level_begin + levels_per_task;
    const int64_t m = (task / groups) % M;
    const int64_t b = task / (groups * M);
    const int64_t bm_offset = b * pb.S * row_stride + m * D;
    for (int64_t q = 0; q < Q; ++q) {
      const int64_t item = (b * Q + q) * M + m;  // index of (b, q, m)
      const scalar_t* __restrict g = grad_output + item * D;
      for (int64_t l = level_begin; l < level_end; ++l) {
        const int64_t H = pb.shapes[2 * l], W = pb.shapes[2 * l + 1];
        const int64_t level_offset = bm_offset + pb.starts[l] * row_stride;
        const int64_t point = (item * L + l) * P;  // index of (b, q, m, l, 0)
        const scalar_t* loc = pb.locations + point * 2;
        const scalar_t* weight = pb.weights + point;
        scalar_t* grad_loc = grad_locations + point * 2;
        scalar_t* grad_weight = grad_weights + point;
        const bool* padded = pb.padded_level(b, l);
        for (int64_t p = 0; p < P;
             ++p, loc += 2, ++weight, grad_loc += 2, ++grad_weight) {
          if (!locate(loc[0], loc[1], H, W, pt)) {
            grad_loc[0] = grad_loc[1] = *grad_weight = scalar_t(0);
            continue;
          }
          drop_padded(padded, pt);
          const scalar_t a = *weight;
          const scalar_t* v[4];
          scalar_t* gv[4];
          scalar_t c[4];  // attention weight times bilinear weight
          for (int k = 0; k < 4; ++k) {
            const bool inside = pt.pixel[k] >= 0;
            const int64_t offset = level_offset + pt.pixel[k] * row_stride;
            v[k] = inside ? pb.value + offset : zero_row.data();
            gv[k] = inside ? grad_value + offset : sink_rows.data() + k * D;
            c[k] = a * pt.weight[k];
          }
          const scalar_t *v0 = v[0], *v1 = v[1], *v2 = v[2], *v3 = v[3];
          scalar_t *gv0 = gv[0], *gv1 = gv[1], *gv2 = gv[2], *gv3 = gv[3];
          // output += a * sum_k w_k v_k, so d/dv_k = a w_k g, and every
          // other gradient follows from the four dots <g, v_k>.
          scalar_t dot0 = 0, dot1 = 0, dot2 = 0, dot3 = 0;
#pragma omp simd reduction(+ : dot0, dot1, dot2, dot3)
          for (int64_t d = 0; d < D; ++d) {
            const scalar_t gd = g[d];
            dot0 += gd * v0[d];
            dot1 += gd * v1[d];
            dot2 += gd * v2[d];
            dot3 += gd * v3[d];
            gv0[d] += c[0] * gd;
            gv1[d] += c[1] * gd;
            gv2[d] += c[2] * gd;
            gv3[d] += c[3] * gd;
          }
          const scalar_t lx = pt.lx, ly = pt.ly, hx = 1 - lx, hy = 1 - ly;
          *grad_weight = pt.weight[0] * dot0 + pt.weight[1] * dot1 +
                         pt.weight[2] * dot2 + pt.weight[3] * dot3;
          // x = loc_x * W - 0.5, so d/dloc_x = W d/dx.
          grad_loc[0] = a * static_cast<scalar_t>(W) *
                        (hy * (dot1 - dot0) + ly * (dot3 - dot2));
          grad_loc[1] = a * static_cast<scalar_t>(H) *
                        (hx * (dot2 - dot0) + lx * (dot3 - dot1));
        }
      }
    }
  }
}

// The task loops above, compiled again for AVX2 + FMA and picked at run time:
// the extension's flags target baseline x86-64 (128-bit SSE2 vectors), and
// 256-bit vectors run both passes faster (docs/benchmarks.md has the
// figures); AVX-512 was not faster overall at D = 32. Results differ from the
// SSE2 build in the last bits only, through fused multiply-adds; on one
// machine they are deterministic.
#if MSDA_X86_DISPATCH
template <typename scalar_t>
__attribute__((target("avx2,fma"))) void forward_tasks_avx2(
    const Problem<scalar_t>& pb, scalar_t* output, int64_t begin,
    int64_t end) {
  forward_tasks(pb, output, begin, end);
}

template <typename scalar_t>
__attribute__((target("avx2,fma"))) void backward_tasks_avx2(
    const Problem<scalar_t>& pb, const scalar_t* grad_output,
    scalar_t* grad_value, scalar_t* grad_locations, scalar_t* grad_weights,
    int64_t groups, int64_t begin, int64_t end) {
  backward_tasks(pb, grad_output, grad_value, grad_locations, grad_weights,
                 groups, begin, end);
}

inline bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") &&
                          __builtin_cpu_supports("fma");
  return has;
}
#endif
// Forward of the tasks [begin, end) (see forward_tasks) with the best
// instruction set of the machine.
template <typename scalar_t>
void forward_range(const Problem<scalar_t>& pb, scalar_t* output,
                   int64_t begin, int64_t end) {
#if MSDA_X86_DISPATCH
  if (cpu_has_avx2_fma()) {
    forward_tasks_avx2(pb, output, begin, end);
    return;
  }
#endif
  forward_tasks(pb, output, begin, end);
}

// Backward of the tasks [begin, end) (see backward_tasks) with the best
// instruction set of the machine.
template <typename scalar_t>
void backward_range(const Problem<scalar_t>& pb, const scalar_t* grad_output,
                    scalar_t* grad_value, scalar_t* grad_locations,
                    scalar_t* grad_weights, int64_t groups, int64_t begin,
                    int64_t end) {
#if MSDA_X86_DISPATCH
  if (cpu_has_avx2_fma()) {
    backward_tasks_avx2(pb, grad_output, grad_value, grad_locations,
                        grad_weights, groups, begin, end);
    return;
  }
#endif
  backward_tasks(pb, grad_output, grad_value, grad_locations, grad_weights,
                 groups, begin, end);
}

// The number of forward tasks per chunk of a parallel loop so that a chunk
// does about grain_size multiply-adds: small calls stay serial.
template <typename scalar_t>
int64_t forward_grain(const Problem<scalar_t>& pb, int64_t grain_size) {
  const int64_t work_per_task = std::max<int64_t>(1, pb.L * pb.P * pb.D);
  return std::max<int64_t>(1, grain_size / work_per_task);
}

}  // namespace msda
}  // namespace mmdet_detr
