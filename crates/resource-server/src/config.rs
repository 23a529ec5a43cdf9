//! The two choices a deployment makes about tokens, named as flags and variables name them.

/// JWS algorithms this server can verify. `none` and the HMAC family are deliberately absent:
/// a resource server holds no shared secret with Keycloak, and accepting HS256 would let anyone
/// with the public key forge tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl Algorithm {
    /// The JOSE name (`"RS256"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }

    /// The same algorithm as jsonwebtoken names it.
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::PS384 => jsonwebtoken::Algorithm::PS384,
            Self::PS512 => jsonwebtoken::Algorithm::PS512,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
        }
    }

    /// Every algorithm this server can verify.
    pub const ALL: [Self; 8] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// When a token must be bound to the client certificate of its connection (RFC 8705).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindingMode {
    /// Ignore `cnf` (not recommended; for comparison in the tutorial).
    Off,
    /// A token carrying `cnf.x5t#S256` must arrive with that certificate.
    #[default]
    WhenPresent,
    /// Every token must be certificate-bound and arrive with its certificate.
    Required,
}

impl BindingMode {
    pub const ALL: [Self; 3] = [Self::Off, Self::WhenPresent, Self::Required];

    /// The one name of each mode: what the flag and the variable take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::WhenPresent => "when-present",
            Self::Required => "required",
        }
    }
}

/// The flags' possible values, from the names above (the CLI enables the `clap` feature).
#[cfg(feature = "clap")]
mod flags {
    use super::{Algorithm, BindingMode};
    use clap::builder::PossibleValue;

    impl clap::ValueEnum for BindingMode {
        fn value_variants<'a>() -> &'a [Self] {
            &Self::ALL
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(PossibleValue::new(self.name()))
        }
    }

    impl clap::ValueEnum for Algorithm {
        fn value_variants<'a>() -> &'a [Self] {
            &Self::ALL
        }

        fn to_possible_value(&self) -> Option<PossibleValue> {
            Some(PossibleValue::new(self.name()))
        }
    }
}
