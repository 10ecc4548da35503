"""Tests of miniprogram_api: the WeChat client against the emulator."""
