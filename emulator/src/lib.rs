//! D365 F&O OData emulator.
