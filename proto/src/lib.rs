//! The otrd.v1 gRPC API shared by the daemon and every front-end.
//!
//! `proto/otrd/v1/otrd.proto` is the source of truth; this crate only compiles it (with `protox`,
//! no system `protoc`) and re-exports the generated types, the tonic client and server, and the
//! encoded file descriptor set that the daemon hands to tonic-reflection. [`socket`] is the
//! client side of the Unix socket that every front-end shares: where it is and whether the daemon
//! on it is the user's own.
#![allow(missing_docs)]

/// Generated code for package `otrd.v1`.
pub mod v1 {
    tonic::include_proto!("otrd.v1");

    /// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/otrd_v1_descriptor.bin"));
}

pub mod socket;

/// The API version this crate speaks; bumped on any incompatible change to `otrd.v1`.
pub const API_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use prost::Message;

    /// The descriptor embedded for reflection must decode and describe the service we serve.
    #[test]
    fn descriptor_set_decodes_and_names_the_service() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct FileSet {
            #[prost(message, repeated, tag = "1")]
            file: Vec<File>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct File {
            #[prost(string, optional, tag = "2")]
            package: Option<String>,
            #[prost(message, repeated, tag = "6")]
            service: Vec<Service>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Service {
            #[prost(string, optional, tag = "1")]
            name: Option<String>,
        }
        let set = FileSet::decode(super::v1::FILE_DESCRIPTOR_SET).expect("descriptor decodes");
        let file = set
            .file
            .iter()
            .find(|f| f.package.as_deref() == Some("otrd.v1"))
            .expect("otrd.v1 present");
        assert!(file
            .service
            .iter()
            .any(|s| s.name.as_deref() == Some("Otrd")));
    }
}
