//! Kernels on slices: matrix products, image-to-column transforms, elementwise loops and
//! reductions, and their naive twins.

pub mod activation;
pub mod elementwise;
pub mod gemm;
pub mod im2col;
pub mod packed_b;
pub mod simd;

pub use gemm::{Op, matmul};
