//! Neural-network pieces for the `train` stage: dense kernels, activations, losses,
//! optimizers, initializers and the MLP with its hand-written backward pass.

pub mod act;
pub mod init;
pub mod lbfgs;
pub mod linalg;
pub mod loss;
pub mod mlp;
pub mod optim;
pub mod powf;
pub mod tanh;
