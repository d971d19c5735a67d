//! OTR session logic and the two schemes (pure, no I/O).

pub mod native;
