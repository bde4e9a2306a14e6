//! What server-side apply needs to know of a type: how each list and map merges.
//!
//! structured-merge-diff reads this from the OpenAPI schema's extensions
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, and a
//! key field's `default`); here it is a small owned tree the API server fills, from the OpenAPI
//! schemas or from the strategic-merge schema. Whatever the tree does not describe is
//! "deduced", as SMD's `deduced` type: lists atomic, maps granular (merged key by key), all
//! the way down.

use std::collections::BTreeMap;

use serde_json::Value;

/// How a list merges (`x-kubernetes-list-type`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole, owned as one field (SMD's default for a list without information).
    #[default]
    Atomic,
    /// A set of scalars: each value is its own field (`v:...`).
    Set,
    /// A map keyed by these fields of its elements (`x-kubernetes-list-map-keys`); each element
    /// is its own field (`k:{...}`).
    Map(Vec<String>),
}

/// How a map (object) merges (`x-kubernetes-map-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MapType {
    /// Merged key by key, each key its own field.
    #[default]
    Granular,
    /// Replaced whole, owned as one field.
    Atomic,
}

/// The merge information of one value: if it is a list, [`Type::list`] and the elements'
/// [`Type::element`]; if it is an object, [`Type::map`] and its [`Type::fields`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Type {
    pub list: ListType,
    pub map: MapType,
    /// The type of named fields of an object; a field not listed is [`Type::element`]'s if
    /// set (a map's values), else deduced.
    pub fields: BTreeMap<String, Type>,
    /// A list's elements, or a map's values.
    pub element: Option<Box<Type>>,
    /// Defaults of key fields of a list's elements (Service and container ports' `protocol`
    /// default to `TCP`), used when an element omits the key, as SMD's default_keys.
    pub key_defaults: BTreeMap<String, Value>,
}

/// The deduced type: atomic lists, granular maps.
pub static DEDUCED: Type = Type {
    list: ListType::Atomic,
    map: MapType::Granular,
    fields: BTreeMap::new(),
    element: None,
    key_defaults: BTreeMap::new(),
};

impl Type {
    /// An object with these named fields.
    pub fn object<I: IntoIterator<Item = (S, Type)>, S: Into<String>>(fields: I) -> Type {
        Type {
            fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            ..Type::default()
        }
    }

    /// An associative list keyed by `keys` (`x-kubernetes-list-type: map`).
    pub fn list_map(keys: &[&str], element: Type) -> Type {
        Type {
            list: ListType::Map(keys.iter().map(|k| k.to_string()).collect()),
            element: Some(Box::new(element)),
            ..Type::default()
        }
    }

    /// A set of scalars (`x-kubernetes-list-type: set`).
    pub fn set() -> Type {
        Type {
            list: ListType::Set,
            ..Type::default()
        }
    }

    /// An atomic list or map.
    pub fn atomic() -> Type {
        Type {
            map: MapType::Atomic,
            ..Type::default()
        }
    }

    /// A map whose values all have type `element` (`additionalProperties`).
    pub fn map_of(element: Type) -> Type {
        Type {
            element: Some(Box::new(element)),
            ..Type::default()
        }
    }

    /// Adds a key field's default.
    pub fn key_default(mut self, key: &str, value: Value) -> Type {
        self.key_defaults.insert(key.to_string(), value);
        self
    }

    /// The type of field `name` of an object.
    pub fn field(&self, name: &str) -> &Type {
        self.fields
            .get(name)
            .or(self.element.as_deref())
            .unwrap_or(&DEDUCED)
    }

    /// The type of a list's elements.
    pub fn elements(&self) -> &Type {
        self.element.as_deref().unwrap_or(&DEDUCED)
    }
}
