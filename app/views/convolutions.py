"""Chapter 3: convolutions and building blocks, six labs on one real image.

Lab 1 picks the image and the kernel and hands its feature map to labs 2–6, which are fragments:
one of their sliders reruns only its own lab. Lab UIs: app/widgets/conv_kernel.py (labs 1, 3) and
app/widgets/conv_layers.py (labs 2, 4, 5, 6); computation: primer.conv; figures and the numbers
behind each sentence: primer.conv_figures.
"""

from app import ui
from app.widgets import conv_kernel, conv_layers

page = ui.ChapterPage("convolutions")

# Lab 1: a kernel on a real image (CT, MR, radiographs, or the user's DICOM)
page.lesson("weights")
source = conv_kernel.kernel_lab(page)
page.lesson("maps", expanded=False)

# Lab 2: stride, padding and dilation on a grid small enough to count
page.lesson("geometry")
conv_layers.stride_lab(page, source)

# Lab 3: one output pixel of lab 1's feature map, as a dot product
conv_kernel.dot_lab(page, source)

# Lab 4: activation functions, pooling and batch normalization
page.lesson("nonlinearity")
page.lesson("pooling", expanded=False)
page.lesson("batchnorm", expanded=False)
conv_layers.actpool_lab(page, source)

# Lab 5: receptive field growth through a stack of layers
page.lesson("receptive")
conv_layers.field_lab(page, source)

# Lab 6: a trained model's first-layer filters beside the hand-designed kernels
page.lesson("learned")
conv_layers.filters_lab(page, source)

page.quiz()
