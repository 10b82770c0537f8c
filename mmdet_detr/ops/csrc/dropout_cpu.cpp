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
#include "dropout_cpu.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/PhiloxRNGEngine.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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

}  // namespace

std::vector<at::Tensor> dropout_cpu_forward(const at::Tensor& input,
                                            double p) {
  TORCH_CHECK(input.device().is_cpu() && input.is_contiguous(),
              "dropout_cpu_forward: input must be a contiguous CPU tensor");
  TORCH_CHECK(p > 0.0 && p < 1.0,
              "dropout_cpu_forward: p must be in (0, 1), got ", p);
  const double keep = 1.0 - p;
  const uint64_t threshold =
      static_cast<uint64_t>(std::llround(keep * 4294967296.0));
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
        scalar_t* out = output.data_ptr<scalar_t>();
        bool* keep_mask = mask.data_ptr<bool>();
        const opmath_t s = static_cast<opmath_t>(scale);
        at::parallel_for(0, num_blocks, 1, [&](int64_t begin, int64_t end) {
          for (int64_t b = begin; b < end; ++b) {
            at::Philox4_32 engine(seed, static_cast<uint64_t>(b), 0);
            const int64_t stop = std::min(numel, (b + 1) * kBlock);
            for (int64_t i = b * kBlock; i < stop; ++i) {
              const bool k = static_cast<uint64_t>(engine()) < threshold;
              keep_mask[i] = k;
              out[i] = k ? static_cast<scalar_t>(
                               static_cast<opmath_t>(in[i]) * s)
                         : static_cast<scalar_t>(0);
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
        const bool* keep_mask = mask.data_ptr<bool>();
        scalar_t* out = grad_input.data_ptr<scalar_t>();
        const opmath_t s = static_cast<opmath_t>(scale);
        at::parallel_for(0, numel, kBlock, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            out[i] = static_cast<scalar_t>(
                static_cast<opmath_t>(grad[i]) * s *
                static_cast<opmath_t>(keep_mask[i]));
          }
        });
      });
  return grad_input;
}

}  // namespace mmdet_detr
