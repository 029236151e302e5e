//! The vocabulary of outcomes: [`Decision`], [`Refusal`] and [`Reason`].
//!
//! Every reason code of SPEC section 7 is a [`Reason`] variant, and every
//! property of a reason (code, status, default message) is a `match` over all
//! variants, so a new reason does not compile until each is given. Turning a
//! refusal into HTTP is `respond`'s job, not this module's.

use std::fmt;

use http::StatusCode;

/// Why a request was refused: the stable reason codes of SPEC section 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A `hotlink` condition held.
    HotlinkDenied,
    /// A `country` condition held.
    CountryDenied,
    /// An `ip` condition held.
    IpDenied,
    /// A `query_regex` or `header_regex` condition held.
    PatternDenied,
    /// A `method` condition held.
    MethodDenied,
    /// A path condition held.
    PathDenied,
    /// A `host` condition held.
    HostDenied,
    /// A `deny` rule without conditions matched.
    RuleDenied,
    /// No rule decided and `default_action = "deny"`.
    DefaultDeny,
    /// A `require` rule matched and the token lacks its roles.
    RoleInsufficient,
    /// A `require` rule matched and there is no bearer token.
    TokenMissing,
    /// A `require` rule matched and the bearer token did not verify.
    TokenInvalid,
    /// A directory without an index, with `autoindex = false`.
    DirectoryListingDisabled,
    /// A file the gateway may not read.
    FileNotReadable,
    /// A path that resolves outside a `root`.
    OutsideRoot,
    /// A request that cannot be read unambiguously.
    BadRequest,
    /// `CONNECT`, and methods a route cannot serve.
    MethodNotAllowed,
    /// A body over `max_body_bytes`.
    BodyTooLarge,
    /// A request head over `max_header_bytes`.
    HeadersTooLarge,
    /// The upstream could not be connected to.
    UpstreamUnreachable,
    /// The upstream sent no response head in time.
    UpstreamTimeout,
    /// No route, or no such file.
    NotFound,
}

impl Reason {
    /// Every reason, for tests and for label pre-registration in metrics.
    pub const ALL: [Reason; 22] = [
        Reason::HotlinkDenied,
        Reason::CountryDenied,
        Reason::IpDenied,
        Reason::PatternDenied,
        Reason::MethodDenied,
        Reason::PathDenied,
        Reason::HostDenied,
        Reason::RuleDenied,
        Reason::DefaultDeny,
        Reason::RoleInsufficient,
        Reason::TokenMissing,
        Reason::TokenInvalid,
        Reason::DirectoryListingDisabled,
        Reason::FileNotReadable,
        Reason::OutsideRoot,
        Reason::BadRequest,
        Reason::MethodNotAllowed,
        Reason::BodyTooLarge,
        Reason::HeadersTooLarge,
        Reason::UpstreamUnreachable,
        Reason::UpstreamTimeout,
        Reason::NotFound,
    ];

    /// The stable code that bodies, logs and metrics carry.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::HotlinkDenied => "hotlink_denied",
            Reason::CountryDenied => "country_denied",
            Reason::IpDenied => "ip_denied",
            Reason::PatternDenied => "pattern_denied",
            Reason::MethodDenied => "method_denied",
            Reason::PathDenied => "path_denied",
            Reason::HostDenied => "host_denied",
            Reason::RuleDenied => "rule_denied",
            Reason::DefaultDeny => "default_deny",
            Reason::RoleInsufficient => "role_insufficient",
            Reason::TokenMissing => "token_missing",
            Reason::TokenInvalid => "token_invalid",
            Reason::DirectoryListingDisabled => "directory_listing_disabled",
            Reason::FileNotReadable => "file_not_readable",
            Reason::OutsideRoot => "outside_root",
            Reason::BadRequest => "bad_request",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::UpstreamUnreachable => "upstream_unreachable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::NotFound => "not_found",
        }
    }

    /// The reason with this code.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The status a refusal with this reason gets unless a rule's `status` says otherwise.
    pub const fn status(self) -> StatusCode {
        match self {
            Reason::HotlinkDenied
            | Reason::CountryDenied
            | Reason::IpDenied
            | Reason::PatternDenied
            | Reason::MethodDenied
            | Reason::PathDenied
            | Reason::HostDenied
            | Reason::RuleDenied
            | Reason::DefaultDeny
            | Reason::RoleInsufficient
            | Reason::DirectoryListingDisabled
            | Reason::FileNotReadable
            | Reason::OutsideRoot => StatusCode::FORBIDDEN,
            Reason::TokenMissing | Reason::TokenInvalid => StatusCode::UNAUTHORIZED,
            Reason::BadRequest => StatusCode::BAD_REQUEST,
            Reason::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Reason::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            Reason::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Reason::NotFound => StatusCode::NOT_FOUND,
        }
    }

    /// The message a refusal carries unless its rule has a `message`.
    pub const fn message(self) -> &'static str {
        match self {
            Reason::HotlinkDenied => "Linking to this resource from another site is not allowed",
            Reason::CountryDenied => "Access from your country is not allowed",
            Reason::IpDenied => "Access from your network is not allowed",
            Reason::PatternDenied => "The request matched a blocked pattern",
            Reason::MethodDenied => "This method is not allowed for this resource",
            Reason::PathDenied => "Access to this path is not allowed",
            Reason::HostDenied => "Access to this host is not allowed",
            Reason::RuleDenied => "Access to this resource is not allowed",
            Reason::DefaultDeny => "No rule allows access to this resource",
            Reason::RoleInsufficient => "You do not have permission to access this resource",
            Reason::TokenMissing => "A bearer token is required to access this resource",
            Reason::TokenInvalid => "The bearer token is invalid or has expired",
            Reason::DirectoryListingDisabled => "Directory listing is disabled",
            Reason::FileNotReadable => "This file cannot be read",
            Reason::OutsideRoot => "This path leads outside the served folder",
            Reason::BadRequest => "The request could not be understood",
            Reason::MethodNotAllowed => "This method is not allowed",
            Reason::BodyTooLarge => "The request body is too large",
            Reason::HeadersTooLarge => "The request headers are too large",
            Reason::UpstreamUnreachable => "The upstream server could not be reached",
            Reason::UpstreamTimeout => "The upstream server did not answer in time",
            Reason::NotFound => "The requested resource was not found",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Index of a rule in its policy (`Policy::rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(pub u32);

/// What the rules decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Forward, or refuse and why.
    pub outcome: Outcome,
    /// Dry-run rules that would have refused the request, in rule order.
    pub dry_run_hits: Vec<DryRunHit>,
}

/// Allowed or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forward the request; `rule` is the `allow` rule that decided, `None`
    /// when `default_action = "allow"` did.
    Allow {
        /// The deciding rule.
        rule: Option<RuleId>,
    },
    /// Answer with a refusal.
    Refuse(Refusal),
}

/// A refusal: everything `respond` needs besides the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// The rule that refused; `None` for `default_deny` and refusals that are not a rule's.
    pub rule: Option<RuleId>,
    /// The status sent (a `deny` rule's `status`, else the reason's).
    pub status: StatusCode,
}

impl Refusal {
    /// A refusal that no rule made (framing, routes, upstreams).
    pub const fn of(reason: Reason) -> Refusal {
        Refusal {
            reason,
            rule: None,
            status: reason.status(),
        }
    }

    /// Whether the answer is the plain `not_found` response (a `deny` with
    /// `status = 404`): nothing in it tells the refusal from a missing page.
    pub fn is_hidden(&self) -> bool {
        self.status == StatusCode::NOT_FOUND && self.reason != Reason::NotFound
    }
}

/// A dry-run rule that would have refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRunHit {
    /// The rule.
    pub rule: RuleId,
    /// What it would have answered.
    pub reason: Reason,
}

impl Decision {
    /// Whether the request is forwarded.
    pub fn is_allowed(&self) -> bool {
        matches!(self.outcome, Outcome::Allow { .. })
    }

    /// The refusal, when refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.outcome {
            Outcome::Allow { .. } => None,
            Outcome::Refuse(r) => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_code_that_reads_back() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.code()), Some(reason));
            assert!(!reason.message().ends_with('.'), "{reason}");
        }
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }

    #[test]
    fn reasons_have_the_statuses_of_spec_section_7() {
        let table = [
            (Reason::RoleInsufficient, 403),
            (Reason::TokenMissing, 401),
            (Reason::TokenInvalid, 401),
            (Reason::BadRequest, 400),
            (Reason::MethodNotAllowed, 405),
            (Reason::BodyTooLarge, 413),
            (Reason::HeadersTooLarge, 431),
            (Reason::UpstreamUnreachable, 502),
            (Reason::UpstreamTimeout, 504),
            (Reason::NotFound, 404),
            (Reason::DefaultDeny, 403),
            (Reason::OutsideRoot, 403),
        ];
        for (reason, status) in table {
            assert_eq!(reason.status().as_u16(), status, "{reason}");
        }
    }

    #[test]
    fn only_a_rule_404_is_hidden() {
        let mut refusal = Refusal::of(Reason::PathDenied);
        assert!(!refusal.is_hidden());
        refusal.status = StatusCode::NOT_FOUND;
        assert!(refusal.is_hidden());
        assert!(!Refusal::of(Reason::NotFound).is_hidden());
    }
}
