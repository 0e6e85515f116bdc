//! The images part of Roleout's schema (images, installation engines, and
//! what machine entries carry for them): attribute types numbered 200 and
//! up, object classes 100 and up. `schema.rs` concatenates these tables
//! after the catalog's.
//!
//! An image's entry holds its description as canonical JSON and, for
//! searches, its manifest digest and hardware key; its files are in the
//! content store, named by the manifest.

use crate::schema::{AttributeType, ClassKind, ObjectClass, Syntax};

/// The images' attribute types (numbers 200+).
pub(crate) const IMAGE_ATTRIBUTES: &[AttributeType] = &[
    AttributeType {
        number: 200,
        name: "roleoutImagingSource",
        description: "Whether the machine may upload images of itself (set by admins)",
        syntax: Syntax::Boolean,
        single_value: true,
    },
    AttributeType {
        number: 201,
        name: "roleoutImageDescription",
        description: "An image: hardware, OS configuration, file systems and manifest digest, JSON",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 202,
        name: "roleoutManifest",
        description: "SHA-256 of a tree manifest in the content store, lowercase hex",
        syntax: Syntax::Ascii,
        single_value: true,
    },
    AttributeType {
        number: 203,
        name: "roleoutSourceMachine",
        description: "Name of the machine an image was captured from",
        syntax: Syntax::Text,
        single_value: true,
    },
    AttributeType {
        number: 204,
        name: "roleoutEngineUrl",
        description: "The URL an installation engine answers at",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 205,
        name: "roleoutEngine",
        description: "Name of the installation engine a machine is reached through",
        syntax: Syntax::Text,
        single_value: true,
    },
];

/// The images' object classes (numbers 100+).
pub(crate) const IMAGE_CLASSES: &[ObjectClass] = &[
    ObjectClass {
        number: 100,
        name: "roleoutImage",
        description: "A captured software system: its description here, its files in the content store",
        kind: ClassKind::Structural,
        superior: "top",
        must: &["cn", "roleoutImageDescription", "roleoutManifest"],
        may: &["roleoutHardwareKey", "roleoutSourceMachine", "description"],
    },
    ObjectClass {
        number: 101,
        name: "roleoutInstallationEngine",
        description: "A roleoutd that builds images onto the targets of its site",
        kind: ClassKind::Structural,
        superior: "top",
        must: &["cn"],
        may: &[
            "roleoutEngineUrl",
            "roleoutCertificateFingerprint",
            "roleoutLastSeen",
            "description",
        ],
    },
];
