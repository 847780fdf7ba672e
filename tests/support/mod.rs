pub mod children;
pub mod proxy;
pub mod redis;
