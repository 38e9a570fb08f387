//! Wukong: one Kubernetes object for a whole KubeVirt virtual machine.
//!
//! The crate is the operator's library: the API ([`api`]), validation
//! ([`validate`]), the pure builders of every child object ([`build`]), the
//! offline renderer ([`render`]) and the controller ([`controller`]).

pub mod api;
pub mod build;
pub mod cli;
pub mod controller;
pub mod operate;
pub mod render;
pub mod validate;
