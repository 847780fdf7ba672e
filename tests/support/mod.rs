pub mod children;
pub mod redis;
