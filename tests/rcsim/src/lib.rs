//! rcsim
