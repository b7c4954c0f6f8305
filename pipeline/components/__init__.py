"""KFP v2 components, one per module. Each imports its step function inside its body: KFP ships
only the function's source to the container, where the training image has the package."""
