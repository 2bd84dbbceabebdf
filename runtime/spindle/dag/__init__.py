"""Ray Core's DAG API (``ray.dag``): build a graph with ``.bind()``, run it with ``dag.execute()``.

    from spindle.dag import InputNode, MultiOutputNode

    with InputNode() as inp:
        dag = combine.bind(f.bind(inp), g.bind(inp))
    spindle.get(dag.execute(3))

Not compiled graphs (``experimental_compile``): every execution submits ordinary tasks and calls.
"""

from spindle.dag.class_node import ClassMethodNode, ClassNode
from spindle.dag.dag_node import DAGNode
from spindle.dag.function_node import FunctionNode
from spindle.dag.input_node import DAGInputData, InputAttributeNode, InputNode
from spindle.dag.output_node import MultiOutputNode

__all__ = ["ClassMethodNode", "ClassNode", "DAGInputData", "DAGNode", "FunctionNode", "InputAttributeNode",
           "InputNode", "MultiOutputNode"]
