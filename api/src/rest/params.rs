//! Parameters under the name rule ([`names`]: a room name, identity or track id), documented
//! with the rule's length and pattern: the path parameters of the room API, and the helper
//! that documents such a parameter anywhere (WHIP/WHEP paths, query strings).

use cascade_signaling::names;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// The schema of a name: a string of 1 to [`names::MAX_BYTES`] bytes that matches
/// [`names::PATTERN`].
pub fn name_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(names::MAX_BYTES))
        .pattern(Some(names::PATTERN))
}

/// A parameter that follows the name rule ([`name_schema`]).
pub fn name_param(
    name: &str,
    location: ParameterIn,
    description: Option<&str>,
    required: bool,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .description(description)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .schema(Some(name_schema()))
        .build()
}

/// Required path parameters under the name rule, each a name and its description.
fn path_params(params: &[(&str, &str)]) -> Vec<Parameter> {
    params
        .iter()
        .map(|(name, description)| name_param(name, ParameterIn::Path, Some(description), true))
        .collect()
}

const ROOM: (&str, &str) = ("room", "Room name.");
const IDENTITY: (&str, &str) = ("identity", "Participant identity.");
const TRACK: (&str, &str) = ("track", "Track id (`TR_…`).");

/// `{room}` path parameter.
#[derive(Debug, Clone, Deserialize)]
pub struct RoomPath {
    /// Room name.
    pub room: String,
}

impl IntoParams for RoomPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        path_params(&[ROOM])
    }
}

/// `{room}/participants/{identity}` path parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct ParticipantPath {
    /// Room name.
    pub room: String,
    /// Participant identity.
    pub identity: String,
}

impl IntoParams for ParticipantPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        path_params(&[ROOM, IDENTITY])
    }
}

/// `{room}/participants/{identity}/tracks/{track}` path parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct TrackPath {
    /// Room name.
    pub room: String,
    /// Participant identity.
    pub identity: String,
    /// Track id (`TR_…`).
    pub track: String,
}

impl IntoParams for TrackPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        path_params(&[ROOM, IDENTITY, TRACK])
    }
}
