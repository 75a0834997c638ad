//! Entities and wire constants shared by every layer: document ids, access rights bits and the
//! well-known principal ids of OpenIAP Flow. No IO, no policy: decisions live in `flowkeep-security`.

pub mod ids;
pub mod rights;

pub use ids::new_object_id;
pub use rights::Rights;
