// Dropout on CPU: the Bernoulli mask and the scaled product in one pass.
//
// Element i is kept when a 32-bit Philox4x32-10 output falls below
// round(keep * 2^32), so the mask is i.i.d. Bernoulli(keep), the distribution
// of torch's dropout (torch's CUDA dropout draws from the same generator
// family). Elements are cut into fixed blocks, block b using Philox
// subsequence b of a seed drawn from torch's default CPU generator, so the
// mask depends on the seed only, not on the number of threads, and
// torch.manual_seed reproduces it. The mask is kept as bool for the backward
// pass: a quarter of the float mask that torch's CPU dropout saves.
//
// A block's Philox words are computed 16 counters at a time, so that the
// rounds vectorise, in a build for AVX-512 or AVX2 when the CPU has them;
// all builds compute the same integers. Applying the mask is branch-free.
//
// With a residual, the output is residual + dropout(input), so the residual
// sum of a transformer layer costs no pass of its own either.
//
// With relu, the input first goes through a ReLU and the saved mask is
// "kept and not negative", so the same backward serves both and the
// activation costs neither a pass nor a tensor of its own. NaN inputs stay
// NaN, as through torch.relu.
#include "dropout_cpu.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/PhiloxRNGEngine.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace mmdet_detr {
namespace {

constexpr int64_t kBlock = 1 << 14;  // elements per Philox subsequence

uint64_t draw_seed() {
  auto gen = at::get_generator_or_default<at::CPUGeneratorImpl>(
      c10::nullopt, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(gen->mutex_);
  return gen->random64();
}

// Philox4x32-10 for kLanes counters at once, written so that compilers
// vectorise the lanes. words[4 * j + r] is word r of counter
// {first + j, 0, subsequence}, the order in which at::Philox4_32 returns its
// outputs, so the stream is at::Philox4_32(seed, subsequence, 0)'s.
constexpr int kLanes = 16;

__attribute__((always_inline)) inline void philox_lanes(uint64_t seed,
                                                        uint64_t subsequence,
                                                        uint32_t first,
                                                        uint32_t* words) {
  constexpr uint32_t kMulA = 0xD2511F53, kMulB = 0xCD9E8D57;
  constexpr uint32_t kKeyA = 0x9E3779B9, kKeyB = 0xBB67AE85;
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    c0[l] = first + static_cast<uint32_t>(l);
    c1[l] = 0;
    c2[l] = static_cast<uint32_t>(subsequence);
    c3[l] = static_cast<uint32_t>(subsequence >> 32);
  }
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kMulA) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kMulB) * c2[l];
      c0[l] = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      c1[l] = static_cast<uint32_t>(p1);
      c2[l] = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c3[l] = static_cast<uint32_t>(p0);
    }
    k0 += kKeyA;
    k1 += kKeyB;
  }
  for (int l = 0; l < kLanes; ++l) {
    words[4 * l] = c0[l];
    words[4 * l + 1] = c1[l];
    words[4 * l + 2] = c2[l];
    words[4 * l + 3] = c3[l];
  }
}

// The first `count` (a multiple of 4 * kLanes, at most kBlock) words of
// Philox subsequence `block`, compiled for the best instruction set of the
// machine; every version computes the same integers.
#define MMDET_DETR_PHILOX_BLOCK(NAME, TARGET)                               \
  TARGET void NAME(uint64_t seed, uint64_t block, int64_t count,           \
                   uint32_t* words) {                                      \
    for (int64_t j = 0; j < count; j += 4 * kLanes) {                      \
      philox_lanes(seed, block, static_cast<uint32_t>(j / 4), words + j); \
    }                                                                      \
  }
MMDET_DETR_PHILOX_BLOCK(philox_block_baseline, )
#if defined(__x86_64__) && defined(__GNUC__)
MMDET_DETR_PHILOX_BLOCK(philox_block_avx2, __attribute__((target("avx2"))))
MMDET_DETR_PHILOX_BLOCK(philox_block_avx512,
                        __attribute__((target("avx512f"))))
#endif
#undef MMDET_DETR_PHILOX_BLOCK

// x * s where keep is 1, +0 where it is 0. Float and double mask the bits
// of the product, so the loop has no branch and vectorises (a select of
// x * s would not: compilers may not speculate a floating-point multiply).
template <typename T>
inline T scaled_or_zero(T x, T s, uint32_t keep) {
  return keep ? x * s : T(0);
}

inline float scaled_or_zero(float x, float s, uint32_t keep) {
  float y = x * s;
  uint32_t bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits &= 0u - keep;
  std::memcpy(&y, &bits, sizeof bits);
  return y;
}

inline double scaled_or_zero(double x, double s, uint32_t keep) {
  double y = x * s;
  uint64_t bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits &= uint64_t{0} - keep;
  std::memcpy(&y, &bits, sizeof bits);
  return y;
}

// Keeps element i when words[i] <= last_kept and, unless keep_negative is 1,
// x[i] is not negative or zero (!(x <= 0) rather than x > 0: a NaN passes,
// as through torch.relu); writes the mask and x * s or 0, plus residual[i]
// when kResidual. Branch-free (& instead of &&), so that it vectorises.
template <typename scalar_t, typename opmath_t, bool kResidual>
void apply_mask(const scalar_t* __restrict__ x,
                const scalar_t* __restrict__ residual,
                const uint32_t* __restrict__ words, int64_t count,
                uint32_t last_kept, uint32_t keep_negative, opmath_t s,
                scalar_t* __restrict__ out, uint8_t* __restrict__ mask) {
  for (int64_t i = 0; i < count; ++i) {
    const opmath_t xi = static_cast<opmath_t>(x[i]);
    const uint32_t k = static_cast<uint32_t>(words[i] <= last_kept) &
                       (static_cast<uint32_t>(!(xi <= opmath_t(0))) |
                        keep_negative);
    mask[i] = static_cast<uint8_t>(k);
    opmath_t y = scaled_or_zero(xi, s, k);
    if (kResidual) {
      y += static_cast<opmath_t>(residual[i]);
    }
    out[i] = static_cast<scalar_t>(y);
  }
}

// out = grad * s where mask is 1, 0 where it is 0.
template <typename scalar_t, typename opmath_t>
void scale_kept(const scalar_t* __restrict__ grad,
                const uint8_t* __restrict__ mask, int64_t count, opmath_t s,
                scalar_t* __restrict__ out) {
  for (int64_t i = 0; i < count; ++i) {
    out[i] = static_cast<scalar_t>(scaled_or_zero(
        static_cast<opmath_t>(grad[i]), s, static_cast<uint32_t>(mask[i])));
  }
}

using PhiloxBlock = void (*)(uint64_t, uint64_t, int64_t, uint32_t*);

PhiloxBlock select_philox_block() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) return philox_block_avx512;
  if (__builtin_cpu_supports("avx2")) return philox_block_avx2;
#endif
  return philox_block_baseline;
}

}  // namespace

std::vector<at::Tensor> dropout_cpu_forward(
    const at::Tensor& input, double p, bool relu,
    const c10::optional<at::Tensor>& residual) {
  TORCH_CHECK(input.device().is_cpu() && input.is_contiguous(),
              "dropout_cpu_forward: input must be a contiguous CPU tensor");
  TORCH_CHECK(!residual.has_value() ||
                  (residual->is_contiguous() &&
                   residual->sizes() == input.sizes() &&
                   residual->scalar_type() == input.scalar_type() &&
                   residual->device().is_cpu()),
              "dropout_cpu_forward: residual must be a contiguous CPU tensor "
              "of input's shape ", input.sizes(), " and dtype ",
              input.scalar_type());
  TORCH_CHECK(p > 0.0 && p < 1.0,
              "dropout_cpu_forward: p must be in (0, 1), got ", p);
  const double keep = 1.0 - p;
  // A word w keeps its element when w <= last_kept, that is with
  // probability (last_kept + 1) / 2^32 = round(keep * 2^32) / 2^32, clamped
  // to [2^-32, 1].
  const uint32_t last_kept = static_cast<uint32_t>(
      std::min<int64_t>(std::max<int64_t>(std::llround(keep * 4294967296.0),
                                          1),
                        int64_t{1} << 32) -
      1);
  const double scale = 1.0 / keep;
  const uint64_t seed = draw_seed();
  auto output = at::empty_like(input);
  auto mask = at::empty(input.sizes(), input.options().dtype(at::kBool));
  const int64_t numel = input.numel();
  const int64_t num_blocks = (numel + kBlock - 1) / kBlock;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, input.scalar_type(), "dropout_cpu_forward",
      [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const scalar_t* in = input.data_ptr<scalar_t>();
        const scalar_t* res =
            residual.has_value() ? residual->data_ptr<scalar_t>() : nullptr;
        scalar_t* out = output.data_ptr<scalar_t>();
        bool* keep_mask = mask.data_ptr<bool>();
        const opmath_t s = static_cast<opmath_t>(scale);
        static const PhiloxBlock philox_block = select_philox_block();
        const uint32_t keep_negative = relu ? 0u : 1u;
        at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
          alignas(64) uint32_t words[kBlock];
          for (int64_t b = begin; b < end; ++b) {
            const int64_t start = b * kBlock;
            const int64_t count = std::min(kBlock, numel - start);
            philox_block(seed, static_cast<uint64_t>(b),
                         (count + 4 * kLanes - 1) / (4 * kLanes) * 4 * kLanes,
                         words);
            uint8_t* mask_block =
                reinterpret_cast<uint8_t*>(keep_mask + start);
            if (res != nullptr) {
              apply_mask<scalar_t, opmath_t, true>(
                  in + start, res + start, words, count, last_kept,
                  keep_negative, s, out + start, mask_block);
            } else {
              apply_mask<scalar_t, opmath_t, false>(
                  in + start, nullptr, words, count, last_kept,
                  keep_negative, s, out + start, mask_block);
            }
          }
        });
      });
  return {output, mask};
}

at::Tensor dropout_cpu_backward(const at::Tensor& grad_output,
                                const at::Tensor& mask, double scale) {
  TORCH_CHECK(grad_output.device().is_cpu() && grad_output.is_contiguous() &&
                  mask.is_contiguous() && mask.scalar_type() == at::kBool &&
                  mask.numel() == grad_output.numel(),
              "dropout_cpu_backward: contiguous CPU grad_output and a bool "
              "mask of as many elements needed");
  auto grad_input = at::empty_like(grad_output);
  const int64_t numel = grad_output.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kBFloat16, at::kHalf, grad_output.scalar_type(),
      "dropout_cpu_backward", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const scalar_t* grad = grad_output.data_ptr<scalar_t>();
        const uint8_t* keep_mask =
            reinterpret_cast<const uint8_t*>(mask.data_ptr<bool>());
        scalar_t* out = grad_input.data_ptr<scalar_t>();
        const opmath_t s = static_cast<opmath_t>(scale);
        at::parallel_for(0, numel, kBlock, [&](int64_t begin, int64_t end) {
          scale_kept<scalar_t, opmath_t>(grad + begin, keep_mask + begin,
                                         end - begin, s, out + begin);
        });
      });
  return grad_input;
}

}  // namespace mmdet_detr
