//! The images part of Roleout's schema (images, installation engines,
//! jobs, and what machine entries carry for them), and the nonces several
//! roleoutd claim once between them: attribute types numbered 200 and
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
    AttributeType {
        number: 206,
        name: "roleoutDriverAliases",
        description: "The module aliases of an image kernels that could claim a storage or network controller, one per line",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 207,
        name: "roleoutJobDescription",
        description: "A job: its kind, what it works with, its targets and who started it, JSON",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 208,
        name: "roleoutJobPhase",
        description: "Where one target of a job stands: locked, transfer, partition, copy, configure, first-boot, complete or failed",
        syntax: Syntax::Text,
        single_value: true,
    },
    AttributeType {
        number: 209,
        name: "roleoutJobMessage",
        description: "What the last step of a job on one target said",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 210,
        name: "roleoutNotAfter",
        description: "When what an entry records lapses and it may be removed",
        syntax: Syntax::Time,
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
        may: &[
            "roleoutHardwareKey",
            "roleoutSourceMachine",
            "roleoutDriverAliases",
            "description",
        ],
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
    ObjectClass {
        number: 102,
        name: "roleoutJob",
        description: "Work started on a set of machines; one child entry per target",
        kind: ClassKind::Structural,
        superior: "top",
        must: &["cn", "roleoutJobDescription"],
        may: &["description"],
    },
    ObjectClass {
        number: 103,
        name: "roleoutJobTarget",
        description: "One target of a job and where it stands",
        kind: ClassKind::Structural,
        superior: "top",
        must: &["cn", "roleoutJobPhase"],
        may: &["roleoutJobMessage", "roleoutLastSeen"],
    },
    ObjectClass {
        number: 104,
        name: "roleoutNonce",
        description: "A challenge nonce claimed by some roleoutd: its answer was accepted once",
        kind: ClassKind::Structural,
        superior: "top",
        must: &["cn", "roleoutNotAfter"],
        may: &[],
    },
];
