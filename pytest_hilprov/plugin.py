"""pytest plugin for hilprov (options, fixtures, markers); filled in by the plugin issue."""
