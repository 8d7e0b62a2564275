//! `sales-order-operator export`: SalesOrderStatus manifests for orders
//! that already exist in D365, so a team can put them under Git without a
//! single write (policy `Observe`, values as D365 holds them now).

pub mod manifest;
pub mod names;
