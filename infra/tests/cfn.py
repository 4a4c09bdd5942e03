"""CloudFormation YAML for the infra tests: PyYAML's safe loader plus every
short-form intrinsic (!Ref, !Sub, !GetAtt, ...), read as a `Tag`, so a
template can be inspected as data without the SAM/CloudFormation engines.
unittest discovery (`-s infra/tests`) puts this folder on sys.path."""

import yaml


class Tag:
    """A CloudFormation short-form intrinsic (!Ref, !Sub, !GetAtt, ...)."""

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __eq__(self, other):
        return isinstance(other, Tag) and (self.name, self.value) == (other.name, other.value)

    def __hash__(self):
        return hash((self.name, repr(self.value)))

    def __repr__(self):
        return f"!{self.name} {self.value!r}"


def _construct(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader plus every CloudFormation short tag."""


Loader.add_multi_constructor("!", _construct)


def load(path):
    with path.open() as f:
        return yaml.load(f, Loader=Loader)
