//! Wukong: one Kubernetes object for a whole KubeVirt virtual machine.
//!
//! The crate is the operator's library, in layers that point one way: the API
//! ([`api`]) and names ([`naming`]) at the bottom; validation ([`validate`]);
//! the plan, the child kinds and their pure builders ([`children`]); the
//! offline renderer ([`render`]) and the controller ([`controller`]) on them;
//! the process around the controller ([`operate`]) and the command line
//! ([`cli`]) on top, and the kubectl plugin ([`plugin`]) beside it; YAML in
//! and out ([`yaml`]) beside them.

pub mod addresses;
pub mod api;
pub mod children;
pub mod cli;
pub mod controller;
pub mod naming;
pub mod operate;
pub mod plugin;
pub mod render;
pub mod validate;
pub mod yaml;
