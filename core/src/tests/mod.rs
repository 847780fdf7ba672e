//! White-box tests that go through [`crate::Storage`] to reach the modules below it:
//! they sit above every module, so that no module's tests import the storage that
//! imports the module (core/tests/module_graph.rs).

mod group_commit;
mod hit_buffer;
mod query_plans;
mod reader_blob;
mod replaced_file;
mod unlink;

/// The value files (`*.blv`) beside the cache file `c.db` in `dir`.
fn value_files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("c.db.values"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".blv")
        })
        .count()
}
