//! The CSDL scanner behind [`super::metadata`]: fed one XML event at a
//! time, it keeps only what the capabilities need (the entity set, a short
//! summary of each entity type, the schema aliases), so a document of tens
//! of MB is never held whole, and it says when it has seen enough.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};

use super::metadata::{EntityCapabilities, FieldCapability, MetadataError};

/// More entity types than any real service has (F&O: a few thousand public
/// data entities): past
/// this a document is refused, so a flood of tiny types cannot grow memory.
pub(crate) const MAX_ENTITY_TYPES: usize = 50_000;

const ALLOW_EDIT: &str = "Microsoft.Dynamics.OData.Core.V1.AllowEdit";
const COMPUTED: &str = "Org.OData.Core.V1.Computed";
const IMMUTABLE: &str = "Org.OData.Core.V1.Immutable";
const PERMISSIONS: &str = "Org.OData.Core.V1.Permissions";
const UPDATE_RESTRICTIONS: &str = "Org.OData.Capabilities.V1.UpdateRestrictions";

/// What one entity type says of the wanted properties.
#[derive(Debug, Default)]
struct TypeSummary {
    key: Vec<String>,
    fields: Vec<(String, FieldCapability)>,
}

/// Where in the document the scanner is.
#[derive(Debug, Default)]
enum Place {
    #[default]
    Outside,
    /// Inside `<EntityType>` (qualified name), maybe inside one of its
    /// wanted `<Property>`s.
    Type(String),
    Property(String, String, FieldCapability),
    /// Inside the wanted `<EntitySet>`.
    Set,
}

/// Whether the scan can stop.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    Done,
}

/// The scanner: feed it [`Event`]s with [`Scan::on_event`], then take the
/// result with [`Scan::finish`].
#[derive(Debug)]
pub(crate) struct Scan<'w> {
    entity_set: &'w str,
    wanted: &'w [&'w str],
    /// Alias -> namespace, from `edmx:Include` and `Schema`.
    aliases: HashMap<String, String>,
    namespace: String,
    place: Place,
    summary: TypeSummary,
    types: HashMap<String, TypeSummary>,
    /// The wanted set's entity type (qualified), once seen.
    set_type: Option<String>,
    updatable: bool,
    /// Inside an annotation whose term is this (resolved); `EnumMember`
    /// text counts for `Permissions`.
    term: Option<String>,
    in_enum_member: bool,
    set_done: bool,
}

impl<'w> Scan<'w> {
    pub(crate) fn new(entity_set: &'w str, wanted: &'w [&'w str]) -> Self {
        Self {
            entity_set,
            wanted,
            aliases: HashMap::new(),
            namespace: String::new(),
            place: Place::Outside,
            summary: TypeSummary::default(),
            types: HashMap::new(),
            set_type: None,
            updatable: true,
            term: None,
            in_enum_member: false,
            set_done: false,
        }
    }

    /// Takes one event; `Done` once the set and its type are both known.
    pub(crate) fn on_event(&mut self, event: &Event<'_>) -> Result<Flow, MetadataError> {
        match event {
            Event::Start(tag) => self.open(tag)?,
            Event::Empty(tag) => {
                self.open(tag)?;
                self.close(tag.local_name().as_ref())?;
            }
            Event::End(tag) => self.close(tag.local_name().as_ref())?,
            Event::Text(text) if self.in_enum_member => {
                let members: &str = text.as_ref();
                self.permissions(members);
            }
            _ => {}
        }
        let ready = self.set_done
            && self
                .set_type
                .as_ref()
                .is_some_and(|t| self.types.contains_key(t));
        Ok(if ready { Flow::Done } else { Flow::More })
    }

    fn open(&mut self, tag: &BytesStart<'_>) -> Result<(), MetadataError> {
        let attr = |name: &str| attribute(tag, name);
        match tag.local_name().as_ref() {
            "Include" => {
                if let (Some(ns), Some(alias)) = (attr("Namespace")?, attr("Alias")?) {
                    self.aliases.insert(alias, ns);
                }
            }
            "Schema" => {
                self.namespace = attr("Namespace")?.unwrap_or_default();
                if let Some(alias) = attr("Alias")? {
                    self.aliases.insert(alias, self.namespace.clone());
                }
            }
            "EntityType" => {
                let name = attr("Name")?.unwrap_or_default();
                self.place = Place::Type(format!("{}.{name}", self.namespace));
                self.summary = TypeSummary::default();
            }
            "PropertyRef" if matches!(self.place, Place::Type(_)) => {
                if let Some(name) = attr("Name")? {
                    self.summary.key.push(name);
                }
            }
            "Property" => self.property(tag)?,
            "EntitySet" if attr("Name")?.as_deref() == Some(self.entity_set) => {
                let ty = attr("EntityType")?.unwrap_or_default();
                self.set_type = Some(self.resolve(&ty));
                self.place = Place::Set;
            }
            "Annotation" => self.annotation(tag)?,
            "PropertyValue" => self.property_value(tag)?,
            "EnumMember" => self.in_enum_member = self.term.as_deref() == Some(PERMISSIONS),
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self, local: &str) -> Result<(), MetadataError> {
        match local {
            "EntityType" if matches!(self.place, Place::Type(_)) => {
                if let Place::Type(name) = std::mem::take(&mut self.place) {
                    if self.types.len() >= MAX_ENTITY_TYPES {
                        return Err(MetadataError::Malformed(format!(
                            "more than {MAX_ENTITY_TYPES} entity types"
                        )));
                    }
                    self.types.insert(name, std::mem::take(&mut self.summary));
                }
            }
            "Property" if matches!(self.place, Place::Property(..)) => {
                if let Place::Property(ty, name, field) = std::mem::take(&mut self.place) {
                    self.summary.fields.push((name, field));
                    self.place = Place::Type(ty);
                }
            }
            "EntitySet" if matches!(self.place, Place::Set) => {
                self.place = Place::Outside;
                self.set_done = true;
            }
            "Annotation" => self.term = None,
            "EnumMember" => self.in_enum_member = false,
            _ => {}
        }
        Ok(())
    }

    /// A `<Property>` of the current type; only wanted ones are kept.
    fn property(&mut self, tag: &BytesStart<'_>) -> Result<(), MetadataError> {
        let Place::Type(ty) = &self.place else {
            return Ok(());
        };
        let name = attribute(tag, "Name")?.unwrap_or_default();
        if !self.wanted.contains(&name.as_str()) {
            return Ok(());
        }
        let edm_type = attribute(tag, "Type")?.unwrap_or_default();
        let key = self.summary.key.contains(&name);
        let field = FieldCapability {
            edm_type,
            editable: !key,
            read_only_because: key.then(|| "key property".to_owned()),
        };
        self.place = Place::Property(ty.clone(), name, field);
        Ok(())
    }

    /// An annotation of a wanted property or of the wanted set.
    fn annotation(&mut self, tag: &BytesStart<'_>) -> Result<(), MetadataError> {
        let term = self.resolve(&attribute(tag, "Term")?.unwrap_or_default());
        let flag = attribute(tag, "Bool")?.map(|b| b.trim() == "true");
        if let Place::Property(_, _, field) = &mut self.place {
            let because = match term.as_str() {
                ALLOW_EDIT if flag == Some(false) => Some("AllowEdit=false"),
                COMPUTED if flag != Some(false) => Some("Computed"),
                IMMUTABLE if flag != Some(false) => Some("Immutable"),
                _ => None,
            };
            if let Some(because) = because {
                field.read_only(because);
            }
        }
        if term == PERMISSIONS
            && let Some(members) = attribute(tag, "EnumMember")?
        {
            self.permissions(&members);
        }
        self.term = Some(term);
        Ok(())
    }

    /// `Permissions`: a property that cannot be written is not editable.
    fn permissions(&mut self, members: &str) {
        if let Place::Property(_, _, field) = &mut self.place
            && !members.contains("Write")
        {
            field.read_only("Permissions=Read");
        }
    }

    /// `UpdateRestrictions/Updatable` of the wanted set.
    fn property_value(&mut self, tag: &BytesStart<'_>) -> Result<(), MetadataError> {
        if matches!(self.place, Place::Set)
            && self.term.as_deref() == Some(UPDATE_RESTRICTIONS)
            && attribute(tag, "Property")?.as_deref() == Some("Updatable")
            && attribute(tag, "Bool")?.as_deref().map(str::trim) == Some("false")
        {
            self.updatable = false;
        }
        Ok(())
    }

    /// `Alias.Name` -> `Namespace.Name`.
    fn resolve(&self, qualified: &str) -> String {
        match qualified.rsplit_once('.') {
            Some((prefix, name)) => match self.aliases.get(prefix) {
                Some(ns) => format!("{ns}.{name}"),
                None => qualified.to_owned(),
            },
            None => qualified.to_owned(),
        }
    }

    /// The capabilities, once the document (or the scan) ended.
    pub(crate) fn finish(mut self) -> Result<EntityCapabilities, MetadataError> {
        let Some(entity_type) = self.set_type.take().filter(|_| self.set_done) else {
            return Err(MetadataError::EntitySetNotFound {
                entity_set: self.entity_set.to_owned(),
            });
        };
        let summary =
            self.types
                .remove(&entity_type)
                .ok_or_else(|| MetadataError::EntityTypeNotFound {
                    entity_type: entity_type.clone(),
                })?;
        Ok(EntityCapabilities {
            entity_set: self.entity_set.to_owned(),
            entity_type,
            key: summary.key,
            updatable: self.updatable,
            fields: summary.fields.into_iter().collect(),
        })
    }
}

impl FieldCapability {
    /// Not editable, for the first reason found.
    fn read_only(&mut self, because: &str) {
        self.editable = false;
        self.read_only_because
            .get_or_insert_with(|| because.to_owned());
    }
}

/// An attribute's unescaped value.
fn attribute(tag: &BytesStart<'_>, name: &str) -> Result<Option<String>, MetadataError> {
    let malformed = |e: &dyn std::fmt::Display| MetadataError::Malformed(e.to_string());
    let Some(attr) = tag.try_get_attribute(name).map_err(|e| malformed(&e))? else {
        return Ok(None);
    };
    let value = attr
        .normalized_value(quick_xml::XmlVersion::default())
        .map_err(|e| malformed(&e))?;
    Ok(Some(value.into_owned()))
}
