//! `Sequential(...)`: layers applied in order, as `torch.nn.Sequential` (the tutorials' Series).

use super::{Buffer, Layer, Mode, Param, child_path, one_line};
use crate::error::Result;
use crate::tensor::Tensor;
use std::fmt;

/// `y = f_k(… f_1(f_0(x)))`; backward runs the chain rule in reverse.
///
/// Parameters are named `{i}.weight`, `{i}.bias` with `i` counting every layer, activations too,
/// exactly as `nn.Sequential.state_dict()`.
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    /// The index of the first layer with parameters (`layers.len()` if none): in
    /// [`Layer::backward_params`] no layer up to and including it needs to compute ∂L/∂x.
    first_with_params: usize,
    /// Per layer, whether it runs itself, or a neighbour does its work (see [`super::plan`]):
    /// forward and backward then pass it by.
    pub(super) runs: Vec<bool>,
}

impl Sequential {
    /// A chain of layers (not yet checked: see [`Sequential::check`]), to be run as
    /// [`super::plan`] decides (some neighbours fused).
    pub fn new(mut layers: Vec<Box<dyn Layer>>) -> Self {
        let first_with_params = layers
            .iter_mut()
            .position(|l| super::param_count(l.as_mut()) > 0)
            .unwrap_or(layers.len());
        let runs = super::plan::plan(&mut layers);
        Sequential {
            layers,
            first_with_params,
            runs,
        }
    }

    /// The layers that run, with their indices: all but those a neighbour runs.
    fn running(&mut self) -> impl DoubleEndedIterator<Item = (usize, &mut Box<dyn Layer>)> {
        let runs = &self.runs;
        self.layers
            .iter_mut()
            .enumerate()
            .filter(move |(i, _)| runs[*i])
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, in order, mutable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// The output of every layer that runs (a layer a neighbour runs has none: see
    /// [`super::plan`]) for `x` in evaluation mode, with its index, for layer statistics.
    pub fn outputs(&mut self, mut x: Tensor) -> Result<Vec<(usize, String, Tensor)>> {
        let mut out = Vec::new();
        for (i, l) in self.running() {
            x = l.forward(x, Mode::Eval)?;
            out.push((i, super::one_line(l.as_ref()), x.clone()));
        }
        Ok(out)
    }

    /// Runs the forward pass layer by layer and returns the index and name of the first layer whose
    /// output is not finite, if any: the diagnosis for a diverged training step.
    pub fn first_non_finite(&mut self, mut x: Tensor) -> Result<Option<String>> {
        for (i, l) in self.running() {
            x = l.forward(x, Mode::Eval)?;
            if !x.all_finite() {
                return Ok(Some(format!("output of layer {i} ({l})")));
            }
        }
        Ok(None)
    }
}

impl Sequential {
    /// The per-sample output shape for `input`; an error naming the first layer that does not fit,
    /// the shape it expects, the shape it got and the layer that produced it.
    pub fn check_input(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check("", input, " from the input")
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sequential(")?;
        for (i, l) in self.layers.iter().enumerate() {
            writeln!(f, "  ({i}): {}", l.to_string().replace('\n', "\n  "))?;
        }
        write!(f, ")")
    }
}

impl Layer for Sequential {
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let mut shape = input.to_vec();
        for l in &self.layers {
            shape = l.output_shape(&shape)?;
        }
        Ok(shape)
    }

    fn check(&self, index: &str, input: &[usize], from: &str) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        let mut from = from.to_string();
        for (i, l) in self.layers.iter().enumerate() {
            let path = child_path(index, i);
            shape = l.check(&path, &shape, &from)?;
            from = format!(" from layer {path} ({})", one_line(l.as_ref()));
        }
        Ok(shape)
    }

    fn forward(&mut self, mut x: Tensor, mode: Mode) -> Result<Tensor> {
        for (i, l) in self.running() {
            x = l.forward(x, mode.child(i))?;
        }
        Ok(x)
    }

    /// ∂L/∂x = J_0ᵀ(… J_kᵀ(∂L/∂y)): each layer's backward in reverse order.
    fn backward(&mut self, mut grad: Tensor) -> Result<Tensor> {
        for (_, l) in self.running().rev() {
            grad = l.backward(grad)?;
        }
        Ok(grad)
    }

    /// As [`Layer::backward`], except that the layers up to the first one with parameters skip ∂L/∂x.
    fn backward_params(&mut self, mut grad: Tensor) -> Result<Tensor> {
        let first_with_params = self.first_with_params;
        for (i, l) in self.running().rev() {
            grad = if i <= first_with_params {
                l.backward_params(grad)?
            } else {
                l.backward(grad)?
            };
        }
        Ok(grad)
    }

    fn visit_params(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit_params(&format!("{prefix}{i}."), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Buffer)) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.visit_buffers(&format!("{prefix}{i}."), f);
        }
    }

    fn macs(&self, input: &[usize]) -> usize {
        let mut shape = input.to_vec();
        let mut total = 0;
        for l in &self.layers {
            total += l.macs(&shape);
            shape = l.output_shape(&shape).unwrap_or_default();
        }
        total
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.as_ref()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck;
    use crate::layers::{Elementwise, Flatten, Linear, ReLU};
    use rand::SeedableRng;

    #[test]
    fn backward_params_gives_the_same_parameter_gradients() {
        let make = || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
            let net = Sequential::new(vec![
                Box::new(Flatten::default()),
                Box::new(Linear::new(6, 4, true, &mut rng)),
                Box::new(Elementwise::new(ReLU)),
                Box::new(Linear::new(4, 2, true, &mut rng)),
            ]);
            assert_eq!(net.first_with_params, 1);
            net
        };
        gradcheck::check_backward_params(make, &[3, 2, 3]);
    }
}
