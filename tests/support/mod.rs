pub mod children;
pub mod machine;
pub mod proxy;
pub mod redis;
