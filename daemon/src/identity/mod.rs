//! Long-term identity key and the trust store of peers' fingerprints (files under `$XDG_DATA_HOME/otrd/`).
