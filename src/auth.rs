//! Bearer-token verification for `require` rules: JWTs signed with a key from
//! a JWKS file (RS256, ES256, EdDSA) or an HS256 secret, with optional issuer
//! and audience checks, and the roles read from one claim.
//!
//! Verification is pure CPU work on keys loaded with the policy; a reload swaps
//! the keys with everything else.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Why a token did not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a well-formed JWT, a bad signature, an expired token, a wrong issuer or audience…
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The token's `alg` is not one the configured keys accept.
    #[error("token algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    /// No configured key has the token's `kid`.
    #[error("no key with id \"{0}\"")]
    UnknownKey(String),
    /// The roles claim is neither a string nor an array of strings.
    #[error("claim \"{0}\" is not a string or an array of strings")]
    Roles(String),
}

/// Why the `[auth]` keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthLoadError {
    /// The JWKS is not valid JSON of the JWKS shape.
    #[error("invalid JWKS: {0}")]
    Jwks(#[from] serde_json::Error),
    /// A key could not be used.
    #[error("unusable key{}: {source}", kid.as_ref().map(|k| format!(" \"{k}\"")).unwrap_or_default())]
    Key {
        /// The key's `kid`.
        kid: Option<String>,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// The JWKS holds no key edgeguard can use.
    #[error("the JWKS holds no RS256, ES256 or EdDSA key")]
    NoKeys,
}

/// Verification keys and checks from `[auth]`.
pub struct Auth {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    by_kid: HashMap<String, usize>,
    issuer: Option<String>,
    audience: Option<String>,
    roles_claim: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("roles_claim", &self.roles_claim)
            .finish()
    }
}

/// Where the keys come from.
pub enum KeySource<'a> {
    /// A JWKS document's text.
    Jwks(&'a str),
    /// An HS256 secret.
    Hs256(&'a [u8]),
}

impl Auth {
    /// Loads keys; `roles_claim` defaults to "roles" at the caller.
    pub fn new(
        source: KeySource<'_>,
        issuer: Option<String>,
        audience: Option<String>,
        roles_claim: String,
    ) -> Result<Auth, AuthLoadError> {
        let mut keys = Vec::new();
        match source {
            KeySource::Hs256(secret) => {
                let key = DecodingKey::from_secret(secret)
                    .map_err(|source| AuthLoadError::Key { kid: None, source })?;
                keys.push((None, Algorithm::HS256, key));
            }
            KeySource::Jwks(text) => {
                let set: JwkSet = serde_json::from_str(text)?;
                for jwk in &set.keys {
                    let kid = jwk.common.key_id.clone();
                    let alg = match &jwk.algorithm {
                        AlgorithmParameters::RSA(_) => Algorithm::RS256,
                        AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                        _ => continue,
                    };
                    let key = DecodingKey::from_jwk(jwk).map_err(|source| AuthLoadError::Key {
                        kid: kid.clone(),
                        source,
                    })?;
                    keys.push((kid, alg, key));
                }
                if keys.is_empty() {
                    return Err(AuthLoadError::NoKeys);
                }
            }
        }
        let by_kid = keys
            .iter()
            .enumerate()
            .filter_map(|(i, (kid, _, _))| kid.clone().map(|k| (k, i)))
            .collect();
        Ok(Auth {
            keys,
            by_kid,
            issuer,
            audience,
            roles_claim,
        })
    }

    /// Verifies a token and returns its roles (none when the claim is absent).
    pub fn verify(&self, token: &str) -> Result<Vec<String>, AuthError> {
        let header = jsonwebtoken::decode_header(token)?;
        let candidates: Vec<usize> = match &header.kid {
            Some(kid) if !self.by_kid.is_empty() => vec![
                *self
                    .by_kid
                    .get(kid)
                    .ok_or_else(|| AuthError::UnknownKey(kid.clone()))?,
            ],
            _ => (0..self.keys.len())
                .filter(|&i| self.keys[i].1 == header.alg)
                .collect(),
        };
        let mut last = AuthError::Algorithm(header.alg);
        for i in candidates {
            let (_, alg, key) = &self.keys[i];
            if *alg != header.alg {
                return Err(AuthError::Algorithm(header.alg));
            }
            let mut validation = Validation::new(*alg);
            if let Some(iss) = &self.issuer {
                validation.set_issuer(&[iss]);
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
            match &self.audience {
                Some(aud) => {
                    validation.set_audience(&[aud]);
                    let mut required = vec!["exp", "aud"];
                    if self.issuer.is_some() {
                        required.push("iss");
                    }
                    validation.set_required_spec_claims(&required);
                }
                None => validation.validate_aud = false,
            }
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                key,
                &validation,
            ) {
                Ok(data) => return self.roles(&data.claims),
                Err(e) => last = AuthError::Invalid(e),
            }
        }
        Err(last)
    }

    fn roles(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<String>, AuthError> {
        use serde_json::Value;
        match claims.get(&self.roles_claim) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(AuthError::Roles(self.roles_claim.clone())),
                })
                .collect(),
            Some(_) => Err(AuthError::Roles(self.roles_claim.clone())),
        }
    }
}
