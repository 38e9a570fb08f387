//! The children of a Wukong: the plan, the kinds and their pure builders.
//!
//! In: a validated Wukong. Out: its [`plan::Plan`] and, per registered
//! [`ChildKind`], the typed objects to apply. One add-on per file: [`network`]
//! (Multus), [`cloudinit`] (the Secret), [`storage`] (claims and CDI
//! DataVolumes), [`kubevirt`] (the VirtualMachine), [`migration`] (live
//! migrations), each with its kind's
//! duties; [`meta`] is shared. No client, no clock, no randomness: the same
//! input always gives the same objects, which is what `wukong render` prints
//! and what the controller applies.

pub mod cloudinit;
pub mod kind;
pub mod kubevirt;
pub mod meta;
pub mod migration;
pub mod network;
pub mod plan;
pub mod storage;

pub use kind::{BuildInputs, ChildKind, EachKind, LeasedAddress, MANAGE, Permission, Planned, for_each_kind, kind_names};
pub use plan::{Plan, plan};
