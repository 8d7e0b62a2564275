//! The Argo CD health scripts (docs/argocd-health*.lua) run in a real Lua
//! interpreter, as Argo CD runs them; shared by tests/it and tests/e2e.
//!
//! Lua 5.1 (vendored) rather than 5.4: Argo CD embeds gopher-lua, a Lua 5.1
//! implementation, so a script that leans on 5.3+ features (integer
//! division, `//`, utf8, goto) would pass here and fail in Argo CD.

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt};
use serde_json::Value;

/// The health script for SalesOrderStatus.
pub const ORDER_SCRIPT: &str = include_str!("../../docs/argocd-health.lua");
/// The health script for D365Connection.
pub const CONNECTION_SCRIPT: &str = include_str!("../../docs/argocd-health-connection.lua");

/// Argo CD's answer for `obj` by `script`: (hs.status, hs.message).
pub fn health(script: &str, obj: &Value) -> (String, String) {
    let lua = Lua::new();
    // Argo CD hands JSON nulls to the script as nil, not as a sentinel.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let value = lua
        .to_value_with(obj, options)
        .expect("object converts to Lua");
    lua.globals().set("obj", value).unwrap();
    let hs: mlua::Table = lua
        .load(script)
        .set_name("argocd-health.lua")
        .eval()
        .expect("script runs");
    let status: String = hs.get("status").expect("hs.status is a string");
    let message: Option<String> = hs.get("message").unwrap();
    (status, message.unwrap_or_default())
}
