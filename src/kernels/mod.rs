//! Kernels on slices: matrix products, image-to-column transforms, and their naive twins.

pub mod gemm;
pub mod im2col;

pub use gemm::{Op, matmul};
