//! White-box tests that go through [`crate::Storage`] to reach the modules below it:
//! they sit above every module, so that no module's tests import the storage that
//! imports the module (core/tests/module_graph.rs).

mod group_commit;
mod hit_buffer;
mod query_plans;
mod replaced_file;
mod unlink;
