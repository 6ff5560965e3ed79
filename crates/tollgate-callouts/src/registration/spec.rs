//! The FFI-free description of what Tollgate registers: keys, layers, display strings, callout
//! and filter specifications, and the [`Plan`] that groups them.
//!
//! Nothing here calls into the system; the only foreign items used are windows-sys *constants*
//! (layer GUIDs and flag values) re-exported by `tollgate-wfp-sys`.

use core::fmt;

use tollgate_wfp_sys::{
    FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, FWPM_LAYER_ALE_AUTH_CONNECT_V4, FWPM_LAYER_ALE_AUTH_CONNECT_V6,
    FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4, FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6, FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
    FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6, FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4, FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6,
    FWPM_LAYER_ALE_RESOURCE_RELEASE_V4, FWPM_LAYER_ALE_RESOURCE_RELEASE_V6, FWPM_LAYER_STREAM_V4, FWPM_LAYER_STREAM_V6,
    FWPS_LAYER_ALE_AUTH_CONNECT_V4, FWPS_LAYER_ALE_AUTH_CONNECT_V6, FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4,
    FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4, FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6,
    FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4, FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V6, FWPS_LAYER_ALE_RESOURCE_RELEASE_V4,
    FWPS_LAYER_ALE_RESOURCE_RELEASE_V6, FWPS_LAYER_STREAM_V4, FWPS_LAYER_STREAM_V6, GUID,
};

/// Number of callouts (and of filters: one per callout) Tollgate registers.
pub const CALLOUT_COUNT: usize = 12;

// ---- GUIDs ---------------------------------------------------------------------------------------

/// A GUID as one `u128` in its canonical text order (`0x01234567_89ab_cdef_0123_456789abcdef` is
/// `{01234567-89AB-CDEF-0123-456789ABCDEF}`), comparable and printable, convertible to and from the
/// Windows [`GUID`] layout.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Guid(pub u128);

impl Guid {
    /// The all-zero GUID (`GUID_NULL`).
    pub const NULL: Self = Self(0);

    /// The Windows layout of this GUID (`data1`-`data3` native-endian, `data4` as text order).
    #[must_use]
    pub const fn to_windows(self) -> GUID {
        GUID::from_u128(self.0)
    }

    /// Reads a Windows [`GUID`] (the inverse of [`Guid::to_windows`]).
    #[must_use]
    pub const fn from_windows(guid: &GUID) -> Self {
        Self(
            ((guid.data1 as u128) << 96)
                | ((guid.data2 as u128) << 80)
                | ((guid.data3 as u128) << 64)
                | (u64::from_be_bytes(guid.data4) as u128),
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{{{:08X}-{:04X}-{:04X}-{:04X}-{:012X}}}",
            (v >> 96) & 0xFFFF_FFFF,
            (v >> 80) & 0xFFFF,
            (v >> 64) & 0xFFFF,
            (v >> 48) & 0xFFFF,
            v & 0xFFFF_FFFF_FFFF
        )
    }
}

// ---- UTF-16 display strings ------------------------------------------------------------------------

/// A `'static`, NUL-terminated UTF-16 string without interior NULs: what `FWPM_DISPLAY_DATA0`
/// points to. Build one with the crate's `wide!` macro (compile-time ASCII encoding) or check a
/// slice with [`WideStr::new`].
///
/// # Invariants
/// The slice is non-empty, its last unit is 0 and no other unit is 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WideStr(&'static [u16]);

/// The empty string, as a one-unit NUL terminator.
static EMPTY_UNITS: [u16; 1] = [0];

impl WideStr {
    /// The empty string (`L""`).
    pub const EMPTY: Self = Self(&EMPTY_UNITS);

    /// Checks that `units` is NUL-terminated and has no interior NUL.
    #[must_use]
    pub const fn new(units: &'static [u16]) -> Option<Self> {
        let mut rest = units;
        while let [first, tail @ ..] = rest {
            if *first == 0 {
                return if tail.is_empty() { Some(Self(units)) } else { None };
            }
            rest = tail;
        }
        None
    }

    /// The units including the terminating NUL.
    #[must_use]
    pub const fn units_with_nul(self) -> &'static [u16] {
        self.0
    }

    /// The units without the terminating NUL.
    #[must_use]
    pub const fn units(self) -> &'static [u16] {
        match self.0.split_last() {
            Some((_nul, text)) => text,
            None => &[],
        }
    }

    /// Pointer to the first unit; the string is NUL-terminated and lives forever.
    #[must_use]
    pub const fn as_ptr(self) -> *const u16 {
        self.0.as_ptr()
    }
}

impl fmt::Debug for WideStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("L\"")?;
        for c in char::decode_utf16(self.units().iter().copied()) {
            fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        f.write_str("\"")
    }
}

/// Encodes `s` as UTF-16 followed by a NUL into an `N`-unit array (`N` must be `s.len() + 1`).
///
/// A non-ASCII or NUL byte is encoded as 0 and a wrong `N` leaves extra zeros or drops the
/// terminator, so [`WideStr::new`] rejects every such result; the `wide!` macro asserts that at
/// compile time.
#[must_use]
pub(crate) const fn ascii_to_utf16z<const N: usize>(s: &str) -> [u16; N] {
    let mut out = [0_u16; N];
    let mut bytes = s.as_bytes();
    let mut slots: &mut [u16] = &mut out;
    while let ([byte, bytes_tail @ ..], [slot, slots_tail @ ..]) = (bytes, slots) {
        *slot = if byte.is_ascii() && *byte != 0 { *byte as u16 } else { 0 };
        bytes = bytes_tail;
        slots = slots_tail;
    }
    out
}

// ---- Layers --------------------------------------------------------------------------------------

/// The twelve WFP layers Tollgate has a callout at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TollgateLayer {
    /// `FWPM_LAYER_ALE_AUTH_CONNECT_V4`.
    AleAuthConnectV4,
    /// `FWPM_LAYER_ALE_AUTH_CONNECT_V6`.
    AleAuthConnectV6,
    /// `FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4`.
    AleResourceAssignmentV4,
    /// `FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6`.
    AleResourceAssignmentV6,
    /// `FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4`.
    AleEndpointClosureV4,
    /// `FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6`.
    AleEndpointClosureV6,
    /// `FWPM_LAYER_ALE_RESOURCE_RELEASE_V4`.
    AleResourceReleaseV4,
    /// `FWPM_LAYER_ALE_RESOURCE_RELEASE_V6`.
    AleResourceReleaseV6,
    /// `FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4`.
    AleFlowEstablishedV4,
    /// `FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6`.
    AleFlowEstablishedV6,
    /// `FWPM_LAYER_STREAM_V4`.
    StreamV4,
    /// `FWPM_LAYER_STREAM_V6`.
    StreamV6,
}

impl TollgateLayer {
    /// Every layer, in registration order.
    pub const ALL: [Self; CALLOUT_COUNT] = [
        Self::AleAuthConnectV4,
        Self::AleAuthConnectV6,
        Self::AleResourceAssignmentV4,
        Self::AleResourceAssignmentV6,
        Self::AleEndpointClosureV4,
        Self::AleEndpointClosureV6,
        Self::AleResourceReleaseV4,
        Self::AleResourceReleaseV6,
        Self::AleFlowEstablishedV4,
        Self::AleFlowEstablishedV6,
        Self::StreamV4,
        Self::StreamV6,
    ];

    /// The management-layer key (`FWPM_LAYER_*`, fwpmk.h, via windows-sys).
    #[must_use]
    pub const fn layer_key(self) -> Guid {
        Guid::from_windows(match self {
            Self::AleAuthConnectV4 => &FWPM_LAYER_ALE_AUTH_CONNECT_V4,
            Self::AleAuthConnectV6 => &FWPM_LAYER_ALE_AUTH_CONNECT_V6,
            Self::AleResourceAssignmentV4 => &FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4,
            Self::AleResourceAssignmentV6 => &FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6,
            Self::AleEndpointClosureV4 => &FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4,
            Self::AleEndpointClosureV6 => &FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6,
            Self::AleResourceReleaseV4 => &FWPM_LAYER_ALE_RESOURCE_RELEASE_V4,
            Self::AleResourceReleaseV6 => &FWPM_LAYER_ALE_RESOURCE_RELEASE_V6,
            Self::AleFlowEstablishedV4 => &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4,
            Self::AleFlowEstablishedV6 => &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6,
            Self::StreamV4 => &FWPM_LAYER_STREAM_V4,
            Self::StreamV6 => &FWPM_LAYER_STREAM_V6,
        })
    }

    /// The run-time layer id (`FWPS_LAYER_*`): the `layerId` of classifies, of
    /// `FwpsFlowAssociateContext0`/`FwpsFlowRemoveContext0` and of flowDeleteFn.
    #[must_use]
    pub const fn runtime_id(self) -> u16 {
        match self {
            Self::AleAuthConnectV4 => FWPS_LAYER_ALE_AUTH_CONNECT_V4,
            Self::AleAuthConnectV6 => FWPS_LAYER_ALE_AUTH_CONNECT_V6,
            Self::AleResourceAssignmentV4 => FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4,
            Self::AleResourceAssignmentV6 => FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V6,
            Self::AleEndpointClosureV4 => FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4,
            Self::AleEndpointClosureV6 => FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6,
            Self::AleResourceReleaseV4 => FWPS_LAYER_ALE_RESOURCE_RELEASE_V4,
            Self::AleResourceReleaseV6 => FWPS_LAYER_ALE_RESOURCE_RELEASE_V6,
            Self::AleFlowEstablishedV4 => FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
            Self::AleFlowEstablishedV6 => FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6,
            Self::StreamV4 => FWPS_LAYER_STREAM_V4,
            Self::StreamV6 => FWPS_LAYER_STREAM_V6,
        }
    }

    /// Which classify shim serves this layer (v4 and v6 share one).
    #[must_use]
    pub const fn classify_kind(self) -> ClassifyKind {
        match self {
            Self::AleAuthConnectV4 | Self::AleAuthConnectV6 => ClassifyKind::AuthConnect,
            Self::AleResourceAssignmentV4 | Self::AleResourceAssignmentV6 => ClassifyKind::ResourceAssignment,
            Self::AleEndpointClosureV4 | Self::AleEndpointClosureV6 => ClassifyKind::EndpointClosure,
            Self::AleResourceReleaseV4 | Self::AleResourceReleaseV6 => ClassifyKind::ResourceRelease,
            Self::AleFlowEstablishedV4 | Self::AleFlowEstablishedV6 => ClassifyKind::FlowEstablished,
            Self::StreamV4 | Self::StreamV6 => ClassifyKind::Stream,
        }
    }

    /// Whether this is an IPv6 layer.
    #[must_use]
    pub const fn is_v6(self) -> bool {
        matches!(
            self,
            Self::AleAuthConnectV6
                | Self::AleResourceAssignmentV6
                | Self::AleEndpointClosureV6
                | Self::AleResourceReleaseV6
                | Self::AleFlowEstablishedV6
                | Self::StreamV6
        )
    }
}

/// Which of the callout shims' classify functions a callout uses (the kernel engine maps each to
/// its `FWPS_CALLOUT_CLASSIFY_FN3`/notifyFn/flowDeleteFn).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ClassifyKind {
    /// ALE_AUTH_CONNECT: pend, ask, complete; answer the reauthorization.
    AuthConnect,
    /// ALE_RESOURCE_ASSIGNMENT: pend, ask, complete.
    ResourceAssignment,
    /// ALE_ENDPOINT_CLOSURE: teardown signal for pends keyed by the endpoint handle.
    EndpointClosure,
    /// ALE_RESOURCE_RELEASE: teardown signal for resource-assignment pends.
    ResourceRelease,
    /// ALE_FLOW_ESTABLISHED: associates the stream flow context.
    FlowEstablished,
    /// STREAM: inline stream inspection.
    Stream,
}

// ---- Object specifications -----------------------------------------------------------------------

/// The session `FwpmEngineOpen0` opens (always with `FWPM_SESSION_FLAG_DYNAMIC`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionSpec {
    /// `displayData.name`.
    pub name: WideStr,
    /// `displayData.description`.
    pub description: WideStr,
    /// `txnWaitTimeoutInMSec`: how long `FwpmTransactionBegin0` waits for the engine lock; 0 is
    /// BFE's default (15 s, <https://learn.microsoft.com/windows/win32/fwp/object-management>).
    pub txn_wait_timeout_ms: u32,
}

/// The provider (`FWPM_PROVIDER0`; not persistent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProviderSpec {
    /// `providerKey`.
    pub key: Guid,
    /// `displayData.name`.
    pub name: WideStr,
    /// `displayData.description`.
    pub description: WideStr,
}

/// The sublayer (`FWPM_SUBLAYER0`; not persistent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SublayerSpec {
    /// `subLayerKey`.
    pub key: Guid,
    /// `providerKey`.
    pub provider: Guid,
    /// `displayData.name`.
    pub name: WideStr,
    /// `displayData.description`.
    pub description: WideStr,
    /// `weight`: higher-weighted sublayers are invoked first.
    pub weight: u16,
}

/// One callout: both its run-time registration (`FWPS_CALLOUT3`) and its management object
/// (`FWPM_CALLOUT0`), which share the key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CalloutSpec {
    /// The layer it is added at (`FWPM_CALLOUT0::applicableLayer`).
    pub layer: TollgateLayer,
    /// `calloutKey` of both structures.
    pub key: Guid,
    /// `FWPM_CALLOUT0::providerKey`.
    pub provider: Guid,
    /// `displayData.name`.
    pub name: WideStr,
    /// `displayData.description`.
    pub description: WideStr,
    /// `FWPS_CALLOUT3::flags` (`FWP_CALLOUT_FLAG_*`).
    pub flags: u32,
    /// Whether the callout is registered with a flowDeleteFn (required for
    /// `FwpsFlowAssociateContext0` with this callout's id).
    pub has_flow_delete: bool,
    /// Which shim classifies for it.
    pub classify: ClassifyKind,
}

/// What a filter does when it matches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FilterAction {
    /// `FWP_ACTION_CALLOUT_TERMINATING`: the callout returns PERMIT or BLOCK.
    CalloutTerminating,
    /// `FWP_ACTION_CALLOUT_INSPECTION`: the callout returns CONTINUE.
    CalloutInspection,
    /// `FWP_ACTION_CALLOUT_UNKNOWN`: the callout may decide or not; the only action under which
    /// WFP honours `FWPS_STREAM_ACTION_DROP_CONNECTION`.
    CalloutUnknown,
}

/// A filter's weight (<https://learn.microsoft.com/windows/win32/fwp/filter-weight-assignment>).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FilterWeight {
    /// `FWP_EMPTY`: BFE generates a weight in `[0, 2^60)`.
    Auto,
    /// `FWP_UINT8` in `0..=15`: a weight range; BFE generates the low 60 bits.
    Range(u8),
}

/// One filter: no conditions, a callout action, in Tollgate's sublayer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FilterSpec {
    /// `layerKey`.
    pub layer: TollgateLayer,
    /// `filterKey`.
    pub key: Guid,
    /// `providerKey`.
    pub provider: Guid,
    /// `subLayerKey`.
    pub sublayer: Guid,
    /// `displayData.name`.
    pub name: WideStr,
    /// `displayData.description`.
    pub description: WideStr,
    /// `action.calloutKey`.
    pub callout: Guid,
    /// `action.type`.
    pub action: FilterAction,
    /// `weight`.
    pub weight: FilterWeight,
}

/// Everything [`register`](super::register) adds, in order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Plan {
    /// The dynamic session.
    pub session: SessionSpec,
    /// The provider.
    pub provider: ProviderSpec,
    /// The sublayer.
    pub sublayer: SublayerSpec,
    /// The callouts, in registration order.
    pub callouts: [CalloutSpec; CALLOUT_COUNT],
    /// The filters, in add order.
    pub filters: [FilterSpec; CALLOUT_COUNT],
}

/// Why a [`Plan`] is inconsistent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PlanError {
    /// The sublayer names another provider.
    SublayerProvider,
    /// Two callouts share a key.
    DuplicateCalloutKey(Guid),
    /// Two filters share a key.
    DuplicateFilterKey(Guid),
    /// The callout names another provider.
    CalloutProvider(Guid),
    /// The callout's classify kind does not serve its layer.
    CalloutClassifyKind(Guid),
    /// The callout is conditional on flow without a flowDeleteFn, so no flow could ever get the
    /// context that would make WFP invoke it.
    ConditionalOnFlowWithoutFlowDelete(Guid),
    /// The filter names another provider or sublayer.
    FilterOwnership(Guid),
    /// The filter's callout is not in the plan, or is at another layer.
    FilterCallout(Guid),
    /// The filter's weight range is above 15.
    FilterWeightRange(Guid),
}

impl Plan {
    /// Checks the plan's internal consistency (ownership, key uniqueness, every filter's callout
    /// at the filter's layer, flags against flowDeleteFn, weight ranges).
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn validate(&self) -> Result<(), PlanError> {
        let provider = self.provider.key;
        if self.sublayer.provider != provider {
            return Err(PlanError::SublayerProvider);
        }
        for (i, callout) in self.callouts.iter().enumerate() {
            if self.callouts.iter().skip(i + 1).any(|other| other.key == callout.key) {
                return Err(PlanError::DuplicateCalloutKey(callout.key));
            }
            if callout.provider != provider {
                return Err(PlanError::CalloutProvider(callout.key));
            }
            if callout.layer.classify_kind() != callout.classify {
                return Err(PlanError::CalloutClassifyKind(callout.key));
            }
            if callout.flags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW != 0 && !callout.has_flow_delete {
                return Err(PlanError::ConditionalOnFlowWithoutFlowDelete(callout.key));
            }
        }
        for (i, filter) in self.filters.iter().enumerate() {
            if self.filters.iter().skip(i + 1).any(|other| other.key == filter.key) {
                return Err(PlanError::DuplicateFilterKey(filter.key));
            }
            if filter.provider != provider || filter.sublayer != self.sublayer.key {
                return Err(PlanError::FilterOwnership(filter.key));
            }
            if !self.callouts.iter().any(|callout| callout.key == filter.callout && callout.layer == filter.layer) {
                return Err(PlanError::FilterCallout(filter.key));
            }
            if let FilterWeight::Range(range) = filter.weight
                && range > 15
            {
                return Err(PlanError::FilterWeightRange(filter.key));
            }
        }
        Ok(())
    }
}
