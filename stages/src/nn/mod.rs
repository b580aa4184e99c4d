//! Neural-network pieces for the `train` stage: dense kernels, activations, losses,
//! optimizers, initializers, Lipschitz learning rates and the MLP training loop.

pub mod linalg;
